"""`ktools pipeline compile` / `ktools pipeline run-local`: steps 02-05 as a Kubeflow pipeline.

    ktools pipeline compile [--output FILE] [--image IMAGE] [--secret-name NAME] [--store-pvc PVC] [--train-gpus N] [-p NAME VALUE]...
    ktools pipeline run-local [--profile smoke] [-p NAME VALUE]... [--output-dir DIR] [--replace]

`-p` takes pipeline parameters (lower-case, e.g. `-p number_of_summaries 2`) or notebook
parameters (upper-case, as for `ktools run`); for `compile` they become the defaults in
the YAML. Needs the optional extra: `pip install 'ktools[kubeflow]'`.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ktools.kubeflow.names import DEFAULT_IMAGE, DEFAULT_PACKAGE, DEFAULT_SECRET_KEY, DEFAULT_SECRET_NAME
from ktools.notebook_runner.profiles import PROFILES

MISSING_EXTRA = ("ktools pipeline needs the Kubeflow Pipelines SDK: pip install 'ktools[kubeflow]' "
                 "(or: pip install 'kfp[kubernetes]>=2.16.1,<2.17')")


def _add_values(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="pipeline parameter (lower-case) or notebook parameter (upper-case); repeatable")
    parser.add_argument("--profile", choices=sorted(PROFILES), default=None,
                        help="the `ktools run` parameter preset (smoke: tiny sizes; demo: the sample end to end)")


def register(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="pipeline_action", metavar="ACTION", required=True)
    compile_ = actions.add_parser("compile", help="write the pipeline YAML for Kubeflow Pipelines")
    compile_.add_argument("-o", "--output", default=DEFAULT_PACKAGE, help=f"YAML file (default: {DEFAULT_PACKAGE})")
    compile_.add_argument("--image", default=DEFAULT_IMAGE,
                          help=f"container image of every component (default: {DEFAULT_IMAGE}); "
                               "build it from deploy/Containerfile")
    compile_.add_argument("--secret-name", default=DEFAULT_SECRET_NAME,
                          help="Kubernetes secret holding the teacher's API key, mounted as TEACHER_MODEL_API_KEY "
                               f"(default: {DEFAULT_SECRET_NAME}; '' for none)")
    compile_.add_argument("--secret-key", default=DEFAULT_SECRET_KEY,
                          help=f"key inside that secret (default: {DEFAULT_SECRET_KEY})")
    compile_.add_argument("--store-pvc", default="",
                          help="PersistentVolumeClaim mounted in the generation pod for the response store, so a "
                               "failed or re-submitted run resends only unanswered requests (default: none)")
    compile_.add_argument("--train-gpus", type=int, default=0,
                          help="GPUs (nvidia.com/gpu) for the training pod; 2+ train through torchrun "
                               "(build the image with CUDA torch)")
    _add_values(compile_)
    local = actions.add_parser("run-local", help="run the pipeline here with KFP's local subprocess runner")
    _add_values(local)
    local.add_argument("--output-dir", default=None, help="output root (default: KTOOLS_OUTPUT_DIR or output/)")
    local.add_argument("--pipeline-root", default=None, help="KFP artifacts (default: <output>/kfp_local)")
    local.add_argument("--replace", action="store_true",
                       help="replace existing output/step_02..05 and the fine-tuned model with the results")
    local.add_argument("--no-collect", action="store_true",
                       help="leave the results in the KFP artifact folders only")


def _values(args: argparse.Namespace) -> dict[str, Any]:
    from ktools.cli.run import parse_value
    from ktools.notebook_runner.profiles import profile_parameters

    values = profile_parameters(args.profile)
    values.update({name: parse_value(value) for name, value in args.parameter})
    return values


def run(args: argparse.Namespace) -> int:
    try:
        if args.pipeline_action == "compile":
            return _compile(args)
        return _run_local(args)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] != "kfp":
            raise
        print(MISSING_EXTRA, file=sys.stderr)
        return 2
    except (ValueError, FileExistsError) as exc:
        print(f"ktools pipeline {args.pipeline_action}: {exc}", file=sys.stderr)
        return 2


def _compile(args: argparse.Namespace) -> int:
    from ktools.kubeflow.definition import compile_pipeline

    path = compile_pipeline(args.output, image=args.image, secret_name=args.secret_name,
                            secret_key=args.secret_key, train_gpus=args.train_gpus, store_pvc=args.store_pvc,
                            defaults=_values(args))
    secret = (f"secret {args.secret_name!r} (key {args.secret_key!r}) as TEACHER_MODEL_API_KEY"
              if args.secret_name else "no secret")
    print(f"pipeline written to {path} (image {args.image}; {secret})")
    return 0


def _run_local(args: argparse.Namespace) -> int:
    from ktools.kubeflow.local import run_local
    from ktools.kubeflow.steps import PipelineStepError

    try:
        result = run_local(_values(args), output_dir=args.output_dir, pipeline_root=args.pipeline_root,
                           collect=not args.no_collect, replace=args.replace)
    except (PipelineStepError, RuntimeError) as exc:
        # kfp raises RuntimeError naming the failed task; its log was streamed above.
        print(f"ktools pipeline run-local: {exc}", file=sys.stderr)
        return 1
    print(f"\npipeline finished in {result.seconds:.0f} s")
    for name, meta in sorted(result.metadata.items()):
        if name == "model":
            continue
        details = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                            for k, v in sorted(meta.items()) if k != "seconds")
        print(f"  {name}: {meta.get('seconds', 0):.0f} s  {details}")
    for name, path in sorted((result.collected or result.artifacts).items()):
        print(f"  {name} → {path}")
    return 0
