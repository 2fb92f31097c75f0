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
