"""Small documents the conversion tests (and the converter evaluation) build on the fly.

Each builder writes one file and returns its path. The texts carry checkable facts so a
test can tell whether a converter kept them, and boilerplate so it can tell whether a
converter dropped it.
"""

from __future__ import annotations

from pathlib import Path

FACTS = [
    "The Harbour Board met on 14 March 2023",
    "maximum wind speed of 34 knots",
    "Captain Ilse Varga",
    "Pier 7 closes at 22:15",
]

WIKI_HTML = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Greywater Lighthouse - Wikipedia</title>
<style>.x{color:red}</style><script>var tracking = "Cookie banner script";</script></head>
<body>
<header id="mw-head"><nav class="vector-menu"><ul>
  <li><a href="/wiki/Main_Page">Main page</a></li><li><a href="/wiki/Portal:Contents">Contents</a></li>
  <li><a href="/wiki/Special:Random">Random article</a></li><li><a href="/wiki/Help:Contents">Help</a></li>
</ul></nav><form><input placeholder="Search Wikipedia"></form></header>
<div id="mw-panel"><nav id="p-lang"><h3>Languages</h3><ul>
  <li><a lang="de" href="https://de.example.org">Deutsch</a></li><li><a lang="fr" href="https://fr.example.org">Français</a></li>
  <li><a lang="nl" href="https://nl.example.org">Nederlands</a></li><li><a lang="ja" href="https://ja.example.org">日本語</a></li>
</ul></nav></div>
<main id="content" class="mw-body">
<h1 id="firstHeading">Greywater Lighthouse</h1>
<div id="siteSub">From Wikipedia, the free encyclopedia</div>
<div id="mw-content-text"><div class="mw-parser-output">
<p><b>Greywater Lighthouse</b> is a fictional lighthouse on the Orlen coast. The Harbour Board met on 14 March 2023
to approve its restoration. The keeper since 2019 has been Captain Ilse Varga, who logs every storm.</p>
<div id="toc" class="toc"><h2>Contents</h2><ul><li><a href="#History">1 History</a></li><li><a href="#Operations">2 Operations</a></li></ul></div>
<h2><span class="mw-headline" id="History">History</span><span class="mw-editsection">[<a href="?action=edit">edit</a>]</span></h2>
<p>The tower was built in 1888 from local granite and raised by four metres in 1911 after a winter of fog.
Its first lamp burned colza oil and was visible for 14 nautical miles in clear weather.</p>
<h3>Restoration</h3>
<ul><li>Phase one replaced the lantern glazing in 2023.</li><li>Phase two rebuilt the gallery rail in 2024.</li>
<li>Phase three, still open, will repaint the tower in red and white bands.</li></ul>
<h2><span class="mw-headline" id="Operations">Operations</span></h2>
<p>Boats may not approach the rocks when the wind exceeds the maximum wind speed of 34 knots set by the Board.</p>
<table class="wikitable"><caption>Opening hours</caption>
<tr><th>Site</th><th>Opens</th><th>Closes</th></tr>
<tr><td>Visitor centre</td><td>09:00</td><td>17:30</td></tr>
<tr><td>Pier 7</td><td>06:00</td><td>22:15</td></tr>
</table>
<p>Pier 7 closes at 22:15 every day of the year.</p>
<ol><li>Ring the keeper.</li><li>Wait for the green flag.</li></ol>
<pre><code>beacon --mode fog --interval 30s
</code></pre>
<h2><span class="mw-headline" id="References">References</span></h2>
<ol class="references"><li id="cite_note-1"><a href="#cite_ref-1">^</a> Board minutes, 2023.</li></ol>
</div></div>
<div id="catlinks" class="catlinks">Categories: <a href="/wiki/Category:Lighthouses">Lighthouses</a> | <a href="/wiki/Category:Fictional">Fictional places</a></div>
</main>
<footer id="footer"><ul><li>This page was last edited on 2 May 2024, at 10:12.</li>
<li>Text is available under the Creative Commons Attribution-ShareAlike License 4.0.</li>
<li><a href="/wiki/Privacy">Privacy policy</a></li><li><a href="/wiki/About">About Wikipedia</a></li>
<li><a href="/wiki/Disclaimers">Disclaimers</a></li></ul></footer>
</body></html>
"""

BOILERPLATE = ["Random article", "Deutsch", "Privacy policy", "Creative Commons", "Search Wikipedia",
               "Cookie banner script", "Disclaimers"]


def make_report_pdf(path: Path) -> Path:
    """Two pages: headings in a larger font, paragraphs, a table; page 2 in two columns."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(str(path), pagesize=A4)
    width, height = A4
    y = height - 72
    c.setFont("Helvetica-Bold", 18)
    c.drawString(72, y, "Harbour Operations Report")
    y -= 36
    c.setFont("Helvetica-Bold", 14)
    c.drawString(72, y, "1. Meetings")
    y -= 22
    c.setFont("Helvetica", 10)
    for line in ["The Harbour Board met on 14 March 2023 and again in June.",
                 "Boats must stay in port above a maximum wind speed of 34 knots.",
                 "The duty officer that spring was Captain Ilse Varga."]:
        c.drawString(72, y, line)
        y -= 14
    y -= 16
    c.setFont("Helvetica-Bold", 14)
    c.drawString(72, y, "2. Piers")
    y -= 22
    c.setFont("Helvetica", 10)
    rows = [("Pier", "Opens", "Closes"), ("Pier 3", "05:30", "21:00"), ("Pier 7", "06:00", "22:15")]
    for row in rows:
        for i, cell in enumerate(row):
            c.drawString(72 + 120 * i, y, cell)
        y -= 14
    c.drawString(72, y - 6, "Pier 7 closes at 22:15 on weekdays.")
    c.showPage()
    c.setFont("Helvetica-Bold", 14)
    c.drawString(72, height - 72, "3. Two columns")
    c.setFont("Helvetica", 10)
    left = ["LEFT one: the tide gauge at the mouth", "LEFT two: of the harbour reads the level",
            "LEFT three: every ten minutes all day."]
    right = ["RIGHT one: the fog horn on the north", "RIGHT two: breakwater sounds twice in",
             "RIGHT three: each minute of dense fog."]
    for i, (a, b) in enumerate(zip(left, right, strict=True)):
        c.drawString(72, height - 100 - 14 * i, a)
        c.drawString(320, height - 100 - 14 * i, b)
    c.showPage()
    c.save()
    return path


def make_scanned_pdf(path: Path) -> Path:
    """A page with only drawn shapes (a stand-in for a scanned image): no text layer."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    c = canvas.Canvas(str(path), pagesize=A4)
    for i in range(20):
        c.rect(50 + i * 10, 100 + i * 20, 300, 8, fill=1)
    c.showPage()
    c.save()
    return path


def make_encrypted_pdf(path: Path, password: str = "s3cret") -> Path:
    from pypdf import PdfReader, PdfWriter

    plain = make_report_pdf(path.with_name(path.stem + "_plain.pdf"))
    writer = PdfWriter()
    for page in PdfReader(plain).pages:
        writer.add_page(page)
    writer.encrypt(user_password=password, owner_password=password + "-owner")
    with open(path, "wb") as fh:
        writer.write(fh)
    plain.unlink()
    return path


def make_docx(path: Path) -> Path:
    from docx import Document

    doc = Document()
    doc.add_heading("Harbour Handbook", level=0)
    doc.add_heading("Meetings", level=1)
    p = doc.add_paragraph("The Harbour Board met on 14 March 2023. ")
    p.add_run("Attendance is mandatory.").bold = True
    doc.add_heading("Safety", level=2)
    doc.add_paragraph("No sailing above a maximum wind speed of 34 knots.", style="List Bullet")
    doc.add_paragraph("Report to Captain Ilse Varga.", style="List Bullet")
    doc.add_paragraph("Check the forecast.", style="List Number")
    doc.add_paragraph("Sign the log.", style="List Number")
    table = doc.add_table(rows=3, cols=3)
    for r, row in enumerate([("Pier", "Opens", "Closes"), ("Pier 3", "05:30", "21:00"), ("Pier 7", "06:00", "22:15")]):
        for col, value in enumerate(row):
            table.cell(r, col).text = value
    doc.add_paragraph("Pier 7 closes at 22:15 on weekdays.")
    doc.save(str(path))
    return path
