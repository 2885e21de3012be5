"""Exported models on the Hugging Face hub: ``hf:org/name[@revision]`` ids
resolved to a local folder, and folders uploaded.

A repo is looked up in the hub's own cache first (the encoders' cache,
:func:`fmrecon.encoders.hub.hf_hub_cache`, in the hub's layout), so a model
downloaded once (by fmrecon, ``hf download`` or ``snapshot_download``) loads
without the network; a missing one is fetched with
``huggingface_hub.snapshot_download`` (only the files an export holds) unless
``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE`` is set, as transformers does.
The folder's layout is :func:`fmrecon.models.io.save_pretrained`'s.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from fmrecon.encoders.hub import hf_hub_cache, offline_setting, repo_folder, snapshots
from fmrecon.errors import ConfigError, one_line

HUB_PREFIX = "hf:"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "README.md"
EXPORT_FILES = (CONFIG_FILE, WEIGHTS_FILE, CARD_FILE)
_REPO = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def is_hub_id(text) -> bool:
    """Whether ``text`` (a str or a path, as the CLI's ``--checkpoint`` passes
    it) is a hub id ``hf:org/name``."""
    return isinstance(text, (str, os.PathLike)) and os.fspath(text).startswith(HUB_PREFIX)


def parse_hub_id(text: str | os.PathLike) -> tuple[str, str]:
    """``"hf:org/name@rev"`` -> ``("org/name", "rev")`` (revision "main" by default)."""
    text = os.fspath(text)
    repo, _, revision = text[len(HUB_PREFIX) :].partition("@")
    if not _REPO.match(repo):
        raise ConfigError(f"model {text}: expected hf:ORG/NAME[@REVISION]")
    return repo, revision or "main"


def _complete(d: Path) -> bool:
    return (d / CONFIG_FILE).is_file() and (d / WEIGHTS_FILE).is_file()


def resolve_hub_model(text: str) -> Path:
    """The local snapshot folder of the exported model ``hf:org/name[@rev]``:
    from the hub cache, fetched into it first when missing and downloads are
    allowed; a one-line ConfigError otherwise."""
    text = os.fspath(text)
    repo, revision = parse_hub_id(text)
    cache, var = hf_hub_cache()
    for snap in snapshots(cache, repo, revision):
        if _complete(snap):
            return snap
    offline = offline_setting()
    if offline:
        problem = f"not there, and downloads are off ({offline}; unset it to fetch it)"
    else:
        from huggingface_hub import snapshot_download

        try:
            got = Path(
                snapshot_download(
                    repo,
                    revision=revision,
                    cache_dir=str(cache),
                    allow_patterns=list(EXPORT_FILES),
                )
            )
        except Exception as err:  # no network, no such repo, gated: one line
            problem = (
                f"not there, and the download failed ({type(err).__name__}: {one_line(err, 300)})"
            )
        else:
            if _complete(got):
                return got
            problem = f"the repo has no {CONFIG_FILE} + {WEIGHTS_FILE} (not an fmrecon export)"
    raise ConfigError(
        f"model {text}: {CONFIG_FILE} + {WEIGHTS_FILE} of {repo}"
        f"{'' if revision == 'main' else '@' + revision} in the Hugging Face cache "
        f"{cache / repo_folder(repo)} (cache dir from {var}): {problem}; fetch it with "
        f"`hf download {repo}`{'' if revision == 'main' else ' (revision ' + revision + ')'} "
        "where the hub is reachable"
    )


def push_to_hub(directory: str | Path, repo_id: str, private: bool = False) -> str:
    """Upload an exported folder to the hub repo ``repo_id`` (created if
    missing; needs a token: ``hf auth login``); returns the commit's URL."""
    from huggingface_hub import HfApi

    if not _REPO.match(repo_id):
        raise ConfigError(f"--push {repo_id}: expected ORG/NAME")
    api = HfApi()
    try:
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        info = api.upload_folder(
            repo_id=repo_id,
            folder_path=str(directory),
            repo_type="model",
            allow_patterns=list(EXPORT_FILES),
            commit_message="fmrecon export",
        )
    except Exception as err:  # no token, no network, no rights: one line
        raise ConfigError(
            f"--push {repo_id}: upload failed ({type(err).__name__}: {one_line(err, 300)})"
        ) from None
    return str(getattr(info, "commit_url", info))
