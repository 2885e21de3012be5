"""Advice that works: every command line, flag and config key that fmrecon's
messages, help texts and docstrings (``src/fmrecon``) suggest exists in the real CLI.

The strings are collected from the source (every string literal, f-strings with
``{}`` for their fields), so a new hint is checked without being registered:

- a command in backticks (```fmrecon VERB ...```, ```fmrecon-bench ...```,
  ```python -m fmrecon_bench ...```) is parsed with the real argparse parser
  (:func:`fmrecon.cli.build_parser`, :func:`fmrecon_bench.cli.build_parser`),
  placeholders (``CKPT``, ``PATH``, ``{}``) replaced by a value of the option's
  type; a message's command must parse whole, a docstring's may leave out
  required arguments (``fmrecon reconstruct`` names the verb); ``key=value``
  overrides must be config keys;
- any other ``--flag`` must belong to the verb its module implements
  (``fmrecon/commands/VERB.py``), to the verb named just before it
  (``reconstruct --center-fraction``), or else to some verb;
- a dotted config key followed by ``=`` or ``:`` (``model.encoder_weights=PATH``,
  ``data.mask.official: true``) must be a key of :data:`fmrecon.training.config.DEFAULTS`.
"""

from __future__ import annotations

import argparse
import ast
import re
import shlex
from pathlib import Path

import pytest
import torch
import yaml

from fmrecon.cli import VERBS, build_parser
from fmrecon.errors import ConfigError
from fmrecon.training.config import _FREE, DEFAULTS, VALID_KEYS

SRC = Path(__file__).resolve().parents[1] / "src"
FILES = sorted((SRC / "fmrecon").rglob("*.py"))

# flags of other programs that fmrecon's messages name, with the one module allowed to:
# download_command() writes `hf download REPO FILES --revision REV` (huggingface_hub's CLI)
EXTERNAL_FLAGS = {"--revision": "fmrecon/encoders/hub.py"}

_COMMAND = re.compile(r"(fmrecon(?:-bench)? |python -m fmrecon_bench )([^`]*)")
_BACKTICKS = re.compile(r"`+([^`]+)`+")
_FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
_VERB_FLAG = re.compile(rf"\b({'|'.join(VERBS)}) (--[a-z][a-z0-9-]*)")
_KEY = re.compile(r"(?<![\w.])([a-z_]+(?:\.[a-z_]+)+)(?:=|: )")
_PLACEHOLDER = re.compile(r"^([A-Z][A-Z0-9_]*|\{\}|HxW)$")


def _texts(path: Path) -> list[tuple[int, str, bool]]:
    """(line, text, is a docstring) of every string literal of a module (an
    f-string once, ``{}`` for its fields)."""
    tree = ast.parse(path.read_text())
    inner, docs = set(), set()
    out = []
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            docs.add(id(body[0].value))
        if isinstance(node, ast.JoinedStr):
            parts = []
            for v in node.values:
                inner.add(id(v))
                parts.append(v.value if isinstance(v, ast.Constant) else "{}")
            out.append((node.lineno, "".join(parts), False))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in inner:
            out.append((node.lineno, node.value, id(node) in docs))
    return out


TEXTS = [(path, line, text, doc) for path in FILES for line, text, doc in _texts(path)]


def _where(path: Path, line: int) -> str:
    return f"{path.relative_to(SRC)}:{line}"


def _verb_parsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


VERB_PARSERS = _verb_parsers()


def _bench_parser() -> argparse.ArgumentParser:
    from fmrecon_bench.cli import build_parser as bench_parser

    return bench_parser()


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {s: a for a in parser._actions for s in a.option_strings}


def _fill(parser: argparse.ArgumentParser, tokens: list[str]) -> list[str]:
    """Placeholders replaced by a value the option (or positional) they follow takes."""
    options = _options(parser)
    out, action = [], None
    for tok in tokens:
        tok = tok.strip("[]")
        if tok in ("", "...", "|"):
            continue
        if tok.startswith("-"):
            action = options.get(tok.split("=")[0])
        elif _PLACEHOLDER.match(tok) or "{}" in tok:
            kind = getattr(action, "type", None)
            if action is not None and action.choices:
                tok = str(next(iter(action.choices)))
            elif kind is int:
                tok = "1"
            elif kind is float:
                tok = "0.5"
            elif tok == "HxW":
                tok = "64x48"
            else:
                tok = tok.replace("{}", "x") if "{}" in tok else "x"
        out.append(tok)
    return out


class _Refused(Exception):
    pass


def _parse(parser: argparse.ArgumentParser, argv: list[str], whole: bool) -> argparse.Namespace:
    """Parse as the CLI does, an argparse error raised instead of exiting;
    ``whole=False``: required arguments may be missing."""

    def error(message):
        raise _Refused(message)

    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for p in [parser, *(c for a in subs for c in a.choices.values())]:
        p.error = error
        if not whole:
            for action in p._actions:
                if not isinstance(action, argparse._SubParsersAction):
                    action.required = False
    try:
        return parser.parse_args(argv)
    except SystemExit as err:  # --help / --version
        raise _Refused(f"exits ({err.code})") from None


def _commands() -> list[tuple[str, str, str, bool]]:
    """(where, program, arguments, parsed whole) of every backticked fmrecon
    command; a verb alone names the verb (its required arguments may be left out)."""
    found = []
    for path, line, text, doc in TEXTS:
        for quoted in _BACKTICKS.findall(text):
            m = _COMMAND.match(" ".join(quoted.split()))
            if m:
                whole = not doc and len(m.group(2).split()) > 1
                found.append((_where(path, line), m.group(1).strip(), m.group(2), whole))
    return found


COMMANDS = _commands()


def _config_key_ok(key: str) -> bool:
    return key in VALID_KEYS or any(key.startswith(f + ".") for f in _FREE)


@pytest.mark.parametrize("where,program,arguments,whole", COMMANDS, ids=[c[0] for c in COMMANDS])
def test_every_suggested_command_parses(where, program, arguments, whole):
    tokens = shlex.split(arguments)
    if program == "fmrecon":
        verb = tokens[0] if tokens else ""
        assert verb in VERB_PARSERS, f"{where}: `fmrecon {arguments}`: no verb '{verb}'"
        argv = [verb, *_fill(VERB_PARSERS[verb], tokens[1:])]
        try:
            args = _parse(build_parser(), argv, whole)
        except _Refused as err:
            pytest.fail(f"{where}: `fmrecon {arguments}` is refused: {err}")
        for text in getattr(args, "overrides", None) or []:
            key = text.split("=", 1)[0]
            assert _config_key_ok(key), f"{where}: `{text}`: no config key '{key}'"
    else:
        parser = _bench_parser()
        try:
            _parse(parser, _fill(parser, tokens), whole)
        except _Refused as err:
            pytest.fail(f"{where}: `{program} {arguments}` is refused: {err}")


def test_the_commands_found_include_the_known_hints():
    """The collector sees the hints it exists for (a broken regex finds nothing)."""
    found = {f"{p} {a}" for _, p, a, _ in COMMANDS}
    assert any("model.encoder_weights=PATH" in c for c in found)
    assert any(c.startswith("fmrecon evaluate --model") for c in found)
    assert len(COMMANDS) >= 5


def _flag_owners() -> dict[str, set[str]]:
    owners: dict[str, set[str]] = {}
    for verb, parser in VERB_PARSERS.items():
        for flag in _options(parser):
            owners.setdefault(flag, set()).add(verb)
    for flag in _options(build_parser()):
        owners.setdefault(flag, set()).add("fmrecon")
    return owners


def test_every_flag_named_in_a_message_exists():
    owners = _flag_owners()
    bad, external_seen = [], set()
    for path, line, text, _ in TEXTS:
        where = _where(path, line)
        rest = _BACKTICKS.sub(
            lambda m: "" if _COMMAND.match(" ".join(m.group(1).split())) else m.group(0), text
        )  # commands are parsed whole by test_every_suggested_command_parses
        rel = path.relative_to(SRC).as_posix()
        if rel.startswith("fmrecon/commands/") and path.stem in VERB_PARSERS:
            context = {path.stem}
        else:
            context = None  # any verb
        for verb, flag in _VERB_FLAG.findall(rest):
            if verb not in owners.get(flag, set()):
                bad.append(f"{where}: `{verb} {flag}`: {verb} has no {flag}")
        for flag in _FLAG.findall(rest):
            if EXTERNAL_FLAGS.get(flag) == rel:
                external_seen.add(flag)
                continue
            have = owners.get(flag, set())
            if not have or (context is not None and not have & context):
                bad.append(f"{where}: {flag} is an option of no {'/'.join(context or ['verb'])}")
    assert not bad, "\n".join(bad)
    assert external_seen == set(EXTERNAL_FLAGS), "EXTERNAL_FLAGS lists flags no message names"


def test_every_config_key_named_in_a_message_exists():
    tops = {k for k, v in DEFAULTS.items() if isinstance(v, dict)}
    bad = []
    for path, line, text, _ in TEXTS:
        for key in _KEY.findall(text):
            if key.split(".")[0] in tops and not _config_key_ok(key):
                bad.append(f"{_where(path, line)}: '{key}' is no config key")
    assert not bad, "\n".join(bad)


# --- the missing-encoder-weights advice, followed ------------------------------------

CLIP_REPO = "openai/clip-vit-base-patch16"


def _tiny_clip(path: Path) -> Path:
    """A tiny CLIP vision model saved in the Hugging Face directory format."""
    from transformers import CLIPVisionConfig, CLIPVisionModel

    from fmrecon.encoders import TINY_OVERRIDES

    torch.manual_seed(0)
    cfg = {k: v for k, v in TINY_OVERRIDES["clip"].items() if k != "input_size"}
    CLIPVisionModel(CLIPVisionConfig(**cfg)).save_pretrained(path)
    return path


def _tiny_model_config() -> dict:
    from fmrecon.encoders import TINY_OVERRIDES

    return {
        "name": "fm-unetr-clip",
        "options": {"feature_layers": [2, 3, 4, 6], "feature_size": 4},
        "encoder_config": TINY_OVERRIDES["clip"],
    }


def test_the_missing_weights_advice_of_train_works(tmp_path, monkeypatch):
    """The weights are not in the (empty) hub cache: the error's command, with
    CONFIG and PATH filled in, parses with `fmrecon`'s parser and builds the
    model from the local copy."""
    from fmrecon.encoders import EncoderWeightsError
    from fmrecon.training.config import load_config
    from fmrecon.training.run import build_module

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"model": _tiny_model_config()}))
    with pytest.raises(EncoderWeightsError) as err:
        build_module(load_config(config, require_data=False))
    msg = str(err.value)
    assert "\n" not in msg and "--encoder-weights" not in msg
    (command,) = [c for c in _BACKTICKS.findall(msg) if c.startswith("fmrecon ")]
    clip = _tiny_clip(tmp_path / "clip")
    argv = shlex.split(command.replace("CONFIG", str(config)).replace("PATH", str(clip)))[1:]
    args = _parse(build_parser(), argv, whole=True)
    module = build_module(load_config(args.config, args.overrides, require_data=False))
    assert module.model.record.encoder_weights == f"dir:{clip}"


def test_the_missing_weights_advice_of_a_lean_checkpoint_works(tmp_path, monkeypatch):
    """A checkpoint whose encoder is stored by reference to the hub: with the cache
    gone, loading it (fmrecon evaluate / reconstruct) says how to fill the cache
    and offers no path option (those verbs take none); pointing HF_HUB_CACHE at a
    cache that holds the weights, as advised, loads it."""
    from fmrecon.models.io import load_model, save_model
    from fmrecon.models.registry import create_model

    hub = tmp_path / "hub"
    snap = hub / f"models--{CLIP_REPO.replace('/', '--')}" / "snapshots" / ("0" * 40)
    _tiny_clip(snap)
    (hub / f"models--{CLIP_REPO.replace('/', '--')}" / "refs").mkdir()
    (hub / f"models--{CLIP_REPO.replace('/', '--')}" / "refs" / "main").write_text("0" * 40)
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    cfg = _tiny_model_config()
    model = create_model(cfg["name"], encoder_config=cfg["encoder_config"], **cfg["options"])
    assert model.record.encoder_weights == f"hf:{CLIP_REPO}"
    lean = save_model(model, tmp_path / "lean.ckpt", encoder="reference")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    with pytest.raises(ConfigError) as err:
        load_model(lean)
    msg = str(err.value)
    assert "\n" not in msg and "stored by reference" in msg
    assert f"`hf download {CLIP_REPO} config.json pytorch_model.bin`" in msg
    assert "HF_HUB_CACHE" in msg
    assert "model.encoder_weights" not in msg and "--encoder-weights" not in msg
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    assert load_model(lean).record.encoder_weights == f"hf:{CLIP_REPO}"


# environment variables the messages name, and what each is checked to do
_ENV = re.compile(r"\b(?:HF|HUGGINGFACE|TRANSFORMERS|XDG)_[A-Z0-9_]+\b")
CACHE_VARS = ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME")
OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


def test_every_environment_variable_named_is_honoured(tmp_path, monkeypatch):
    """A variable a message tells the user to set changes what fmrecon does: a
    cache variable moves the hub cache fmrecon reads, an offline one stops downloads."""
    from fmrecon.encoders.hub import hf_hub_cache, offline_setting

    named = {v for _, _, text, _ in TEXTS for v in _ENV.findall(text)}
    assert {"HF_HUB_CACHE", "HF_HOME", "HF_HUB_OFFLINE"} <= named
    assert named <= {*CACHE_VARS, *OFFLINE_VARS}, named - {*CACHE_VARS, *OFFLINE_VARS}
    for var in (*CACHE_VARS, *OFFLINE_VARS):
        monkeypatch.delenv(var, raising=False)
    for var in CACHE_VARS:
        with monkeypatch.context() as m:
            m.setenv(var, str(tmp_path / var))
            cache, _ = hf_hub_cache()
            assert str(cache).startswith(str(tmp_path / var))
    assert offline_setting() is None
    for var in OFFLINE_VARS:
        with monkeypatch.context() as m:
            m.setenv(var, "1")
            assert offline_setting() == f"{var}=1"
