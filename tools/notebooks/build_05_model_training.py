"""Build 05_Model_Training/Model_Training.ipynb (stored without outputs).

    python tools/notebooks/build_05_model_training.py
"""

from __future__ import annotations

from pathlib import Path

from nbformat.v4 import new_code_cell, new_markdown_cell
from notebook_file import write_step_notebook

TARGET = Path(__file__).resolve().parents[2] / "05_Model_Training" / "Model_Training.ipynb"

CELLS = [
    new_markdown_cell(
        "# Step 05 — Model training\n\n"
        "Supervised fine-tuning of the student on a training mix from step 04 "
        "(`output/step_04/training_mix/combined_cut_{N}x.jsonl`).\n\n"
        "- Loss where each row's `unmask` says: the whole sequence (knowledge rows) or the assistant turns only.\n"
        "- Full fine-tuning (default) or LoRA (merged into the weights on save).\n"
        "- Optional retention KL (`RETENTION_KL` > 0): on step 04's general-replay rows the student is also "
        "pulled toward the frozen base model's next-token distribution.\n"
        "- Examples of similar length are **grouped** into batches of at most `TOKENS_PER_BATCH` tokens "
        "(padding included; packing is the alternative); the step count is planned to fit "
        "`TIME_BUDGET_MINUTES` on this machine.\n"
        "- With 2+ GPUs the same cell launches `torchrun` workers (data parallel, or FSDP for a model "
        "that does not fit one GPU: `STRATEGY`); on a CPU or one GPU it trains in this kernel.\n"
        "- Checkpoints go to `output/step_05/checkpoints/`; re-running this notebook after an interruption "
        "resumes from the last one. The final model goes to `output/fine_tuned_model/<model>/`."
    ),
    new_code_cell(
        "# Parameters (papermill overrides these). None / \"\" = the value from .env or the default.\n"
        "STUDENT_MODEL_NAME = \"\"       # default: the embedded SmolLM2-135M-Instruct\n"
        "CUT_SIZE = None               # which mix: combined_cut_<CUT_SIZE>x.jsonl (default: smallest cut)\n"
        "MIX_PATH = \"\"                 # or an explicit mix file\n"
        "METHOD = \"full\"               # full | lora\n"
        "BACKEND = \"auto\"              # auto | sft | osft (training_hub, GPU only)\n"
        "STRATEGY = \"auto\"             # 2+ GPUs: ddp | fsdp | auto (fsdp if the model outgrows one GPU)\n"
        "LEARNING_RATE = None          # default: 2e-4 up to 400M parameters, 5e-5 (full) / 1e-4 (LoRA) above\n"
        "LR_SCHEDULER = \"cosine\"       # cosine | wsd (peak rate until the last 20 %: steady under a time budget) | linear | constant\n"
        "EPOCHS = 3.0\n"
        "MAX_STEPS = None              # exact step count (overrides EPOCHS and the time plan)\n"
        "TIME_BUDGET_MINUTES = 7.0     # fewer steps are planned when the epochs would not fit, None for no limit\n"
        "TRAIN_MAX_SEQ_LEN = 512       # longer examples are truncated (was MAX_SEQ_LEN)\n"
        "TOKENS_PER_BATCH = 2048\n"
        "BATCHING = \"length\"           # length (faster here) | packing | length-spread (replay rows in every batch)\n"
        "MAX_ROWS = None               # use only the first N rows of the mix\n"
        "SEED = 42\n"
        "RESUME = True                 # continue from the last checkpoint of the same run\n"
        "SAMPLE_QUESTIONS = 3          # training questions shown with the fine-tuned model's answers\n"
        "QA_CHECK_ROWS = 40            # training questions asked to measure the fit (0: skip)\n"
        "RETENTION_KL = 0.0            # λ of KL(base || student) on the general-replay rows (0: off)\n"
        "FREEZE_EMBEDDINGS = False     # keep the token embeddings and output head as they were (full method)\n"
        "FREEZE_LOWER_LAYERS = 0       # the lowest N transformer blocks keep their weights too: cheaper steps (full method)\n"
        "UPDATE_FRACTION = 1.0         # share of each tensor a step moves, largest momentum first (MoFO); 1: AdamW\n"
        "CALIBRATE = True              # fit a temperature on step 04's held-out Q&A after training",
        metadata={"tags": ["parameters"]},
    ),
    new_code_cell(
        "import pandas as pd\n"
        "from IPython.display import Image, display\n\n"
        "from ktools.config import find_repo_root, load_settings\n"
        "from ktools.train import TrainConfig, detect_backends, load_mix\n"
        "from ktools.train.launch import plan_launch, run_training\n\n"
        "REPO = find_repo_root()\n"
        "settings = load_settings(step_dir=REPO / \"05_Model_Training\", repo_root=REPO,\n"
        "                         student_model_name=STUDENT_MODEL_NAME or None)\n"
        "config = TrainConfig.from_settings(\n"
        "    settings, cut=CUT_SIZE, mix_path=MIX_PATH or None, method=METHOD, backend=BACKEND,\n"
        "    learning_rate=LEARNING_RATE, lr_scheduler=LR_SCHEDULER, epochs=EPOCHS, max_steps=MAX_STEPS, time_budget_minutes=TIME_BUDGET_MINUTES,\n"
        "    max_seq_len=TRAIN_MAX_SEQ_LEN, tokens_per_batch=TOKENS_PER_BATCH, batching=BATCHING, max_rows=MAX_ROWS,\n"
        "    seed=SEED, resume=RESUME, retention_kl=RETENTION_KL, freeze_embeddings=FREEZE_EMBEDDINGS,\n"
        "    freeze_lower_layers=FREEZE_LOWER_LAYERS, update_fraction=UPDATE_FRACTION)\n"
        "if not CALIBRATE:\n"
        "    config = config.replace(calibration_path=\"\")\n"
        "display(pd.DataFrame([{**detect_backends(), \"launch\": plan_launch(config, STRATEGY).reason}]))\n"
        "pd.DataFrame([{\"parameter\": k, \"value\": v} for k, v in config.as_dict().items()])"
    ),
    new_markdown_cell("## The training mix"),
    new_code_cell(
        "rows = load_mix(config.mix_path, limit=config.max_rows)\n"
        "pd.DataFrame([{\"rows\": len(rows), \"unmask=true\": sum(u for _, u in rows),\n"
        "               \"assistant-only\": sum(not u for _, u in rows)}])"
    ),
    new_markdown_cell("## Train\n\nThe bar shows the steps and the latest loss."),
    new_code_cell(
        "result = run_training(config, STRATEGY)  # 2+ GPUs: torchrun workers, their output shown here\n"
        "pd.DataFrame([{k: v for k, v in result.to_dict().items() if k not in {\"losses\", \"config\"}}]).T"
    ),
    new_markdown_cell("## Calibration\n\n"
                      "Trained to a low loss, a small student is overconfident: its likelihoods (step 06's reference "
                      "NLL, multiple choice, sampling) suffer though its greedy answers do not. One temperature, "
                      "fitted on step 04's held-out Q&A (never trained on), divides every logit and is folded into "
                      "the saved weights; greedy answers stay the same (`ktools.train.calibrate`)."),
    new_code_cell(
        "calibration = result.calibration or {}\n"
        "print(calibration.get(\"reason\", \"calibration off (CALIBRATE = False)\"))\n"
        "pd.DataFrame([{k: calibration.get(k) for k in (\"temperature\", \"questions\", \"nll_before\", \"nll_after\")}])"
    ),
    new_markdown_cell("## Loss curve"),
    new_code_cell("display(Image(result.loss_curve)) if result.loss_curve else print(\"no loss logged\")"),
    new_markdown_cell("## Did it fit? Training-set Q&A accuracy\n\n"
                      "A seeded sample of the mix's own fill-in-the-blank questions, answered greedily by the "
                      "fine-tuned model; an answer is right when it contains the expected fact. Next to the loss "
                      "curve this says whether training was long enough (step 06 measures on questions it never "
                      "saw)."),
    new_code_cell(
        "from ktools.train.fit_check import training_qa_accuracy\n\n"
        "fit = training_qa_accuracy(result.model_dir, config.mix_path, n=QA_CHECK_ROWS, seed=SEED,\n"
        "                           report_path=result.report_path)\n"
        "print(f\"training-set Q&A accuracy: {fit['accuracy']} over {fit['n']} questions\")\n"
        "pd.DataFrame(fit[\"rows\"][:SAMPLE_QUESTIONS], columns=[\"question\", \"expected\", \"answer\", \"hit\"])"
    ),
]


if __name__ == "__main__":
    write_step_notebook(CELLS, TARGET, "training")
