"""HTML → markdown: the article, not the page.

trafilatura finds the main content (drops menus, footers, language lists, cookie
banners) and renders headings, lists, tables and code as markdown — it won our
comparison (02_Data_Processing/README.md). Before it runs we strip MediaWiki-style
furniture that sits *inside* the article (edit links, table of contents, category
bar, citation markers) and turn table captions into paragraphs so they don't become
a fake header row.
"""

from __future__ import annotations

import logging
import re

from ktools.documents.errors import DocumentError

log = logging.getLogger(__name__)

# Inside-the-article furniture: removed before extraction.
_DROP_SELECTORS = [
    "script", "style", "noscript", "nav", "header", "footer", "aside", "form",
    ".mw-editsection", "#toc", ".toc", "#catlinks", ".catlinks", "sup.reference", ".navbox",
    ".mw-jump-link", ".printfooter", "#siteSub", ".noprint", "[role=navigation]", ".cookie-banner",
]


def _preclean(html: str) -> tuple[str, str | None]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "lxml")
    title = None
    h1 = soup.find("h1")
    if h1 is not None and h1.get_text(strip=True):
        title = h1.get_text(" ", strip=True)
    elif soup.title is not None and soup.title.get_text(strip=True):
        title = re.split(r"\s+[-–|]\s+", soup.title.get_text(strip=True))[0]
    for selector in _DROP_SELECTORS:
        for node in soup.select(selector):
            node.decompose()
    for caption in soup.find_all("caption"):
        table = caption.find_parent("table")
        para = soup.new_tag("p")
        para.string = caption.get_text(" ", strip=True)
        caption.decompose()
        if table is not None:
            table.insert_before(para)
    return str(soup), title


def _fallback_text(html: str) -> str:
    """Last resort for pages trafilatura rejects (very short pages): visible text of the body."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "lxml")
    body = soup.find("main") or soup.find("article") or soup.body or soup
    lines = []
    for node in body.find_all(["h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "pre", "tr"]):
        text = node.get_text(" ", strip=True)
        if not text:
            continue
        if node.name.startswith("h"):
            lines.append("#" * int(node.name[1]) + " " + text)
        elif node.name == "li":
            lines.append("- " + text)
        elif node.name == "tr":
            lines.append("| " + " | ".join(c.get_text(" ", strip=True) for c in node.find_all(["td", "th"])) + " |")
        else:
            lines.append(text)
    return "\n\n".join(lines)


def html_to_markdown(html: str, source: str, warnings: list[str]) -> str:
    import trafilatura

    cleaned, title = _preclean(html)
    options = dict(output_format="markdown", include_tables=True, include_formatting=True,
                   include_links=False, include_images=False, include_comments=False, deduplicate=False)
    markdown = trafilatura.extract(cleaned, **options)
    if not markdown or len(markdown) < 200:
        recall = trafilatura.extract(cleaned, favor_recall=True, **options)
        if recall and len(recall) > len(markdown or ""):
            markdown = recall
    if not markdown or not markdown.strip():
        markdown = _fallback_text(cleaned)
        if markdown.strip():
            warnings.append(f"{source}: no main article found; kept all visible text of the page")
    if not markdown.strip():
        raise DocumentError(source, "the HTML page has no visible text",
                            "check the page is not rendered by JavaScript; save the rendered page instead")
    markdown = _tidy(markdown)
    if title and not markdown.lstrip().startswith("#"):
        markdown = f"# {title}\n\n{markdown}"
    return markdown


def _tidy(markdown: str) -> str:
    # trafilatura leaves a space before the row-ending pipe and escapes brackets.
    markdown = re.sub(r"\| $", "|", markdown, flags=re.M)
    markdown = markdown.replace("\\[", "[").replace("\\]", "]")
    markdown = _separate_fences(markdown)
    markdown = re.sub(r"\n{3,}", "\n\n", markdown)
    return markdown.strip() + "\n"


def _separate_fences(markdown: str) -> str:
    """A closing ``` fence directly followed by text gets a blank line (a block boundary)."""
    out: list[str] = []
    in_fence = False
    pending_blank = False
    for line in markdown.split("\n"):
        if pending_blank and line.strip():
            out.append("")
        pending_blank = False
        if line.startswith("```"):
            in_fence = not in_fence
            pending_blank = not in_fence
        out.append(line)
    return "\n".join(out)
