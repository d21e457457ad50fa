# rosmind in one image: ROS 2 Jazzy from pip wheels, CPU torch, PyBullet; no system ROS.
#
#   docker build -t rosmind .
#   docker run --rm --shm-size=1g rosmind                 # make demo
#   docker run --rm --shm-size=1g rosmind make test
#   docker run --rm --shm-size=1g rosmind make bench
#
# --shm-size: every ROS 2 process maps a 16 MB Fast DDS shared-memory segment
# (rosmind/config/fastdds.xml); Docker's default 64 MB /dev/shm is too small for a graph of
# nodes, and Fast DDS would fall back to UDP for large messages.
# If the ROS wheels come from a private index, pass --build-arg PIP_EXTRA_INDEX_URL=<url>.
FROM python:3.11-slim-bookworm

# The CPU build of torch; PyPI's default Linux wheel pulls gigabytes of CUDA libraries.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# Unset unless given; pip reads it from the environment of the RUN steps below.
ARG PIP_EXTRA_INDEX_URL
ENV DEBIAN_FRONTEND=noninteractive \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1

# make: the entry points; gcc/g++: for any dependency that builds from source on this platform.
RUN apt-get update \
    && apt-get install -y --no-install-recommends make gcc g++ \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/rosmind

# torch in its own layer (the largest, rarely changes), at the version the constraints pin.
COPY requirements/constraints.txt requirements/constraints.txt
RUN python3 -m venv .venv \
    && .venv/bin/pip install --index-url "$TORCH_INDEX_URL" \
        "$(grep -E '^torch==' requirements/constraints.txt)"

# The same install as on a workstation: `make venv` (it finds torch already satisfied).
COPY . .
RUN make venv

CMD ["make", "demo"]
