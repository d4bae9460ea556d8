"""Names the pipeline and its CLI share (no kfp import: `ktools pipeline --help` works without it)."""

PIPELINE_NAME = "ktools-knowledge-tuning"
# What `podman build -t ktools -f deploy/Containerfile .` produces; push it somewhere the
# cluster can pull from and compile with `--image`.
DEFAULT_IMAGE = "localhost/ktools:latest"
DEFAULT_SECRET_NAME = "ktools-teacher"
DEFAULT_SECRET_KEY = "api_key"
API_KEY_ENV = "TEACHER_MODEL_API_KEY"
DEFAULT_PACKAGE = "ktools-pipeline.yaml"
# Where `--store-pvc` mounts its volume in the generation pod (the response store's home).
STORE_MOUNT = "/mnt/ktools-store"
