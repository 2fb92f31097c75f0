"""Shared fixtures: the real embedded model, loaded once per session; everything offline."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

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
