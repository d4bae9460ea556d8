"""Check the general-knowledge questions against the embedded student model.

    python assets/check_general_questions.py [CANDIDATES.jsonl] [--write assets/general_questions.jsonl]

Asks the embedded SmolLM2-135M-Instruct each question (chat template with its default
system prompt, greedy decoding, 40 new tokens) and reports whether every key fact
appears in the answer (case-insensitive). With --write, keeps only the questions the
model answers correctly, so the forgetting measure after fine-tuning starts from 100 %.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
MAX_NEW_TOKENS = 40


def answer_questions(questions: list[str]) -> list[str]:
    import torch

    from ktools.models import load_causal_lm, load_tokenizer

    tokenizer = load_tokenizer()
    model = load_causal_lm()
    model.eval()
    answers = []
    for question in questions:
        prompt = tokenizer.apply_chat_template(
            [{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True
        )
        inputs = tokenizer(prompt, return_tensors="pt")
        with torch.no_grad():
            output = model.generate(
                **inputs, max_new_tokens=MAX_NEW_TOKENS, do_sample=False, pad_token_id=tokenizer.pad_token_id
            )
        answers.append(tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True))
    return answers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("candidates", nargs="?", default=str(HERE / "general_questions.jsonl"))
    parser.add_argument("--write", help="write the questions the model gets right to this JSONL file")
    args = parser.parse_args(argv)

    rows = [
        json.loads(line) for line in Path(args.candidates).read_text(encoding="utf-8").splitlines() if line
    ]
    answers = answer_questions([row["question"] for row in rows])
    kept = []
    for row, answer in zip(rows, answers, strict=True):
        ok = all(fact.lower() in answer.lower() for fact in row["key_facts"])
        sys.stdout.write(f"{'OK  ' if ok else 'MISS'} {row['question']} -> {answer.strip()!r}\n")
        if ok:
            kept.append(row)
    sys.stdout.write(f"{len(kept)}/{len(rows)} answered correctly\n")
    if args.write:
        with open(args.write, "w", encoding="utf-8") as out:
            for i, row in enumerate(kept, 1):
                out.write(json.dumps({**row, "id": f"g{i:03d}"}, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
