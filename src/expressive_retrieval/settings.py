"""Kedro project settings."""

from expressive_retrieval.config_loader import ProjectConfigLoader
from expressive_retrieval.hooks import LabelSetGuard, RawInputsGuard

HOOKS = (RawInputsGuard(), LabelSetGuard())

CONFIG_LOADER_CLASS = ProjectConfigLoader
CONFIG_LOADER_ARGS = {"base_env": "base", "default_run_env": "local"}
