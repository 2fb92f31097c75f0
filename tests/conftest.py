"""Shared fixtures: the real embedded model, loaded once per session; everything offline."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The fused-step tests compile inductor's C++ kernels without gcc's optimiser (-O0): the generated code, and so what
# the differential tests check, is the same, and a cold compile takes about a quarter of the time (gcc 12.2 at -O3
# also stops with an internal compiler error on the table steps' kernel). bench/README.md has the figures.
os.environ.setdefault("TORCHINDUCTOR_DEBUG_COMPILE", "1")

import pytest


@pytest.fixture(scope="session")
def default_model_dir():
    from hf_s1 import default_model_path

    return default_model_path()


@pytest.fixture(scope="session")
def model_and_tokenizer(default_model_dir):
    from hf_s1 import load_model

    return load_model(default_model_dir)


@pytest.fixture(scope="session")
def model(model_and_tokenizer):
    return model_and_tokenizer[0]


@pytest.fixture(scope="session")
def tokenizer(model_and_tokenizer):
    return model_and_tokenizer[1]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def free_port():
    """A callable returning a TCP port free on 127.0.0.1 right now (for servers and rendezvous)."""
    return _free_port


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny random model with SmolLM2's architecture family and tokenizer (`hf_s1.train.tiny`), made once."""
    from hf_s1.train.tiny import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def load_space_app():
    """Loads spaces/app.py as a module (the Space folder is not a package); a fresh module per call."""
    import importlib.util
    import sys
    from pathlib import Path

    spaces = Path(__file__).resolve().parents[1] / "spaces"
    if str(spaces) not in sys.path:
        sys.path.insert(0, str(spaces))

    def load():
        spec = importlib.util.spec_from_file_location("hf_s1_space_app", spaces / "app.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture(scope="session")
def serve_space(model, tokenizer, load_space_app):
    """Serve the Space app on 127.0.0.1 with the given `SpaceSettings` fields; yields (url, runtime).

    One torch thread per generation, as the Space sets on CPU: it keeps greedy fp32 results identical to
    reference runs and keeps concurrent generations from oversubscribing the cores."""
    import contextlib

    @contextlib.contextmanager
    def serve(**settings):
        import torch

        app = load_space_app()
        from space_settings import SpaceSettings

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        runtime = app.SpaceRuntime(model, tokenizer, SpaceSettings(**settings))
        demo = app.build_demo(runtime)
        port = _free_port()
        demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
        try:
            yield f"http://127.0.0.1:{port}/", runtime
        finally:
            demo.close()
            torch.set_num_threads(threads)

    return serve
