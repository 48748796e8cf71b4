"""Hugging Face tokens: never in a file a push uploads, never in what fkd-hf prints, logs or raises.

The tokens this process knows are the ``token`` of a push, a ``--hub_token`` on the command line, ``HF_TOKEN`` (or
``HUGGING_FACE_HUB_TOKEN``) and the ``hf auth login`` token; anything shaped like a Hugging Face token (``hf_`` and
30 or more letters and digits) counts as one too, whoever it belongs to.

    >>> redact_tokens("401 for Authorization: Bearer hf_" + "x" * 34)
    '401 for Authorization: Bearer ***'

Nothing heavy is imported here: the command runner turns the log redaction on before any command starts.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

__all__ = [
    "TOKEN_SHAPE",
    "remember_token",
    "remember_tokens_in_argv",
    "known_tokens",
    "redact_tokens",
    "redact_logs",
    "scrub_exception",
    "tokens_scrubbed",
    "refuse_tokens_in_files",
]

# Hugging Face user access tokens are ``hf_`` and 34 letters; any ``hf_`` run of 30+ letters and digits is treated as
# one (huggingface_hub has no pattern of its own; secret scanners use ``hf_[a-zA-Z]{34}``).
TOKEN_SHAPE = re.compile(r"hf_[A-Za-z0-9]{30,}")
_TOKEN_SHAPE_BYTES = re.compile(TOKEN_SHAPE.pattern.encode())
_WORD = re.compile(rb"[A-Za-z0-9]")
_HUB_TOKEN_FLAGS = ("--hub_token", "--hub-token")
_CHUNK = 8 << 20
_remembered: list[str] = []
_logs_redacted = False


def remember_token(token: str | None) -> None:
    """Adds ``token`` to the tokens this process redacts (a token given as an argument rather than found)."""
    if isinstance(token, str) and len(token) >= 4 and token not in _remembered:
        _remembered.append(token)


def remember_tokens_in_argv(argv: Iterable[str]) -> None:
    """Remembers the value of every ``--hub_token`` (``--hub-token``, ``--hub_token=T``) of a command line."""
    words = list(argv)
    for index, word in enumerate(words):
        name, equals, value = word.partition("=")
        if name in _HUB_TOKEN_FLAGS:
            remember_token(value if equals else (words[index + 1] if index + 1 < len(words) else None))


def known_tokens(token: str | None = None) -> list[str]:
    """``token``, the remembered ones, the environment's and the stored login token (longest first)."""
    candidates = [token, *_remembered, os.environ.get("HF_TOKEN"), os.environ.get("HUGGING_FACE_HUB_TOKEN")]
    if "huggingface_hub" in sys.modules:  # without it, no stored token was read (and logging must not import it)
        try:
            candidates.append(sys.modules["huggingface_hub"].get_token())
        except Exception:  # a broken token file must not hide the real error
            pass
    tokens = {t for t in candidates if isinstance(t, str) and len(t) >= 4}
    return sorted(tokens, key=len, reverse=True)


def redact_tokens(text: str, token: str | None = None) -> str:
    """``text`` with every known token, and anything shaped like one, replaced by ``***``."""
    for known in known_tokens(token):
        text = text.replace(known, "***")
    return TOKEN_SHAPE.sub(lambda m: m.group() if _joined(m.string, m.start()) else "***", text)


def _joined(text: str | bytes, start: int) -> bool:
    """Whether the ``hf_`` at ``start`` continues a longer word (``xhf_...`` is not a token)."""
    before = text[start - 1 : start]
    return bool(before) and (before.isalnum() if isinstance(before, str) else bool(_WORD.fullmatch(before)))


# --- what is raised and logged ---------------------------------------------------------------------------------------


def scrub_exception(err: BaseException, token: str | None = None) -> BaseException:
    """Removes tokens from the text of ``err`` and of the errors it chains to, in place; returns ``err``."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        err.args = tuple(redact_tokens(a, token) if isinstance(a, str) else a for a in err.args)
        for name in ("strerror", "filename", "filename2", "server_message"):  # OSError's; HfHubHTTPError's
            if isinstance(getattr(err, name, None), str):
                setattr(err, name, redact_tokens(getattr(err, name), token))
        err = err.__cause__ or err.__context__
    return err


@contextlib.contextmanager
def tokens_scrubbed(token: str | None = None) -> Iterator[None]:
    """Remembers ``token`` and removes every token from the text of any error raised inside."""
    remember_token(token)
    redact_logs()
    try:
        yield
    except BaseException as err:
        scrub_exception(err, token)
        raise


def redact_logs() -> None:
    """From now on, every log record of this process (any logger, its message and its exception) is redacted."""
    global _logs_redacted
    if _logs_redacted:
        return
    make_record = logging.getLogRecordFactory()

    def redacting_factory(*args, **kwargs) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a malformed call: logging reports it when the record is emitted
            return record
        clean = redact_tokens(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None:
            scrub_exception(record.exc_info[1])
        return record

    logging.setLogRecordFactory(redacting_factory)
    _logs_redacted = True


# --- what is uploaded ------------------------------------------------------------------------------------------------


def _holds_token(source: Path | bytes, tokens: list[bytes]) -> bool:
    """Whether the bytes (or the file, read in chunks that overlap by more than a token's length) hold a token."""
    if isinstance(source, bytes):
        chunks: Iterable[bytes] = [source]
    else:
        chunks = _chunks(Path(source), overlap=max([len(t) for t in tokens] + [40]))
    for index, chunk in enumerate(chunks):
        if any(t in chunk for t in tokens):
            return True
        # A match at the very start of a later chunk lacks the byte before it; the previous chunk judged it whole.
        if any((m.start() or not index) and not _joined(chunk, m.start()) for m in _TOKEN_SHAPE_BYTES.finditer(chunk)):
            return True
    return False


def _chunks(path: Path, overlap: int) -> Iterator[bytes]:
    with path.open("rb") as file:
        tail = b""
        while block := file.read(_CHUNK):
            yield tail + block
            tail = (tail + block)[-overlap:]


def refuse_tokens_in_files(files: Mapping[str, Path | bytes], token: str | None = None) -> None:
    """Raises, naming the first file, if any file (path or bytes, any type) holds a known token or anything
    shaped like a Hugging Face token. Files on disk are scanned before the generated ones (bytes: cards made from
    them), so the file named is the one to edit. Call it before anything is created on the Hub."""
    tokens = [t.encode() for t in known_tokens(token)]
    for path_in_repo, source in sorted(files.items(), key=lambda item: (isinstance(item[1], bytes), item[0])):
        if _holds_token(source, tokens):
            raise ValueError(
                f"{path_in_repo} contains a Hugging Face token: remove it from the file before pushing, or move the "
                "file out of the folder (tokens belong in HF_TOKEN or `hf auth login`, never in files); nothing was "
                "pushed."
            )
