"""ktools.training_rows: the one place chat and Alpaca training rows are built."""

from __future__ import annotations

import ast
from pathlib import Path

from ktools.export import alpaca_fields_record, messages_record
from ktools.mixing.formats import to_alpaca, to_chat_row
from ktools.training_rows import alpaca_fields, chat_messages

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "ktools"
# Chat messages that are not training rows: the teacher's replies in the OpenAI protocol.
PROTOCOL_REPLIES = {"training_rows.py", "llm/local/protocol.py", "testing/fake_openai.py"}


def test_chat_messages_and_the_thinking_convention():
    assert chat_messages("Q?", "A.") == [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "A."}]
    assert chat_messages("Q?", "A.", system="S")[0] == {"role": "system", "content": "S"}
    assert chat_messages("Q?", "A.", thinking="t")[1] == {"role": "assistant", "content": "A.", "thinking": "t"}
    user, assistant = chat_messages("Q?", "A.", gpt_oss=True)
    assert user["thinking"] is None and assistant["thinking"] == ""
    assert list(alpaca_fields("i", "", "o")) == ["instruction", "input", "output"]


def test_step04_and_ktools_convert_write_the_same_shapes():
    row = {"question": "What is due?", "response": "[ANSWER] The levy. [END]", "document_outline": ""}
    pair = {"question": "What is due?", "answer": "The levy."}
    assert to_chat_row(row, with_document=False).record["messages"] == messages_record(pair)["messages"]
    assert to_alpaca(row, with_document=False) == alpaca_fields_record(pair)


def _literal_rows(path: Path) -> list[int]:
    """Lines where a dict literal is an assistant turn or an Alpaca record."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Dict):
            continue
        pairs = {k.value: v for k, v in zip(node.keys, node.values, strict=True)
                 if isinstance(k, ast.Constant) and isinstance(k.value, str)}
        role = pairs.get("role")
        if "instruction" in pairs or (isinstance(role, ast.Constant) and role.value == "assistant"):
            lines.append(node.lineno)
    return lines


def test_no_other_module_spells_out_a_training_row():
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel not in PROTOCOL_REPLIES and (lines := _literal_rows(path)):
            found[rel] = lines
    assert not found, f"training rows built outside ktools.training_rows: {found}"
