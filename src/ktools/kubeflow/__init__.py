"""Kubeflow Pipelines (KFP v2) for steps 02-05: the same calls as the notebooks, on a cluster.

Needs the optional extra `kubeflow` (`pip install 'ktools[kubeflow]'`); nothing else in
ktools imports this package, so the single-machine path neither loads nor needs kfp.

- `steps`: what each component runs (no kfp import; testable alone);
- `components`: the four lightweight components (thin wrappers over `steps`);
- `definition`: the pipeline, its parameters and `compile_pipeline`;
- `parameters`: the parameters that are settings, from their declarations in `ktools.config`;
- `local`: running it with KFP's local SubprocessRunner (no cluster);
- `names`: defaults shared with the CLI (image, secret).
"""
