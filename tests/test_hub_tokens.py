"""Tokens (fkd_hf.hub.tokens): which ones are known, their redaction from text, errors and log records, and the scan
of files before a push. In-process and offline; the Hub round trips are in test_hub.py."""

import io
import logging

import pytest
from hub_server import ARGV_TOKEN, FAKE_TOKEN, SHAPED_TOKEN, WRONG_TOKEN

from fkd_hf.hub import tokens
from fkd_hf.hub.tokens import (
    redact_logs,
    redact_tokens,
    refuse_tokens_in_files,
    remember_tokens_in_argv,
    scrub_exception,
)


def test_known_and_token_shaped_strings_are_redacted(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    text = f"Authorization: Bearer {FAKE_TOKEN}; other {SHAPED_TOKEN}, joined x{SHAPED_TOKEN}, short hf_abc"
    assert redact_tokens(text) == f"Authorization: Bearer ***; other ***, joined x{SHAPED_TOKEN}, short hf_abc"
    assert redact_tokens(f"given {WRONG_TOKEN}", token=WRONG_TOKEN) == "given ***"


@pytest.mark.parametrize("argv", [["train", "--hub_token", ARGV_TOKEN], ["train", f"--hub-token={ARGV_TOKEN}"]])
def test_a_hub_token_on_the_command_line_is_redacted_from_then_on(argv, monkeypatch):
    monkeypatch.setattr(tokens, "_remembered", [])
    assert redact_tokens(f"echo {ARGV_TOKEN}") == f"echo {ARGV_TOKEN}"  # not token-shaped: unknown until given
    remember_tokens_in_argv(argv)
    assert redact_tokens(f"echo {ARGV_TOKEN}") == "echo ***"


def test_errors_and_log_records_lose_their_tokens(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    try:
        try:
            raise ValueError(f"inner {FAKE_TOKEN}")
        except ValueError as inner:
            raise OSError(5, f"failed with {FAKE_TOKEN}", f"/x/{FAKE_TOKEN}") from inner
    except OSError as err:
        scrub_exception(err)
        assert str(err) == "[Errno 5] failed with ***: '/x/***'" and str(err.__cause__) == "inner ***"

    redact_logs()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("fkd_hf.test_tokens")
    logger.addHandler(handler)
    try:
        logger.warning("warned %s and %s", FAKE_TOKEN, SHAPED_TOKEN)
        try:
            raise RuntimeError(f"raised {FAKE_TOKEN}")
        except RuntimeError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    logged = stream.getvalue()
    assert "warned *** and ***" in logged and "RuntimeError: raised ***" in logged
    assert FAKE_TOKEN not in logged and SHAPED_TOKEN not in logged


def test_the_scan_reads_every_byte_of_every_file_and_names_the_file_on_disk(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    monkeypatch.setattr(tokens, "_CHUNK", 64)  # the tokens below straddle chunk boundaries
    clean = tmp_path / "weights.bin"
    for offset in range(70):  # an hf_ run inside a longer word is no token, wherever the chunks cut it
        clean.write_bytes(b"\x00" * offset + b"hf_short xhf_" + b"A" * 40 + bytes(range(256)))
        refuse_tokens_in_files({"weights.bin": clean, "README.md": b"# card"})
    for index, token in enumerate((FAKE_TOKEN, SHAPED_TOKEN)):
        leaky = tmp_path / f"events-{index}"
        leaky.write_bytes(b"\x00" * (60 + index * 7) + token.encode() + b"\xff" * 100)
        with pytest.raises(ValueError, match=rf"^events-{index} contains a Hugging Face token") as raised:
            # the card generated from it holds the token too: the file to edit is named, not the card
            refuse_tokens_in_files({"README.md": token.encode(), f"events-{index}": leaky, "weights.bin": clean})
        assert token not in str(raised.value)
        leaky.unlink()
