"""Interaction sentiment from an ONNX text classifier in a folder, instead of VADER.

`RETENTION_SENTIMENT_MODEL` unset or empty: VADER (`sentiment.vader_score`). Set to a folder:
the model in it, read from disk at worker start (never downloaded). The folder holds:

- `model.onnx`: a classifier with one text input and one output of class scores, shape
  [1, classes] (a batch of one);
- `vocab.json`: {"token": id, ...}, the tokenizer's whole vocabulary;
- `meta.json`: how to feed and read the model:

      {"input": "tokens",            the model's input name
       "encoding": "bag_of_words",   or "token_ids" (see below)
       "output": "scores",           the output name
       "output_kind": "probabilities",  or "logits" (softmax is applied)
       "labels": ["negative", "neutral", "positive"],  the output's classes, in order
       "lowercase": true,            optional, default true
       "unknown_token": "[UNK]",     token_ids only: the vocabulary's unknown token, optional
       "max_tokens": 256,            token_ids only: longer texts are cut, default 256
       "mask_input": "attention_mask"}  token_ids only: an input of 1s, optional

Tokens are the text's words (runs of letters, digits and apostrophes; lowercased unless
`lowercase` is false), looked up in `vocab.json`. `bag_of_words` feeds a float32 [1, vocabulary
size] vector of token counts (words outside the vocabulary are dropped); `token_ids` feeds the
int64 [1, n] ids in text order (outside the vocabulary: `unknown_token`'s id, else dropped).

The score is P(positive) - P(negative), in -1..1 like VADER's compound score (neutral mass
pulls it toward 0), rounded to 4 decimals, so rules/sentiment.yaml's thresholds keep their
meaning; calibrate them again on your own tickets all the same: two models rarely put the same
text at the same number.

Limits: only a tokenizer that is a word-level vocabulary lookup is reproduced here. A
transformer exported to ONNX plugs in when its vocabulary is whole words; a WordPiece, BPE or
SentencePiece tokenizer (most transformers) splits words into pieces by rules this module does
not implement, and fed word ids it would score nonsense: export such a model with its
tokenizer inside the graph (onnxruntime-extensions) or tokenize upstream and send `sentiment`
with each interaction, which wins over any local scorer.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from retention.errors import InvalidInput
from retention.scoring.sentiment import InteractionScorer, vader_score

MODEL_FILE, VOCAB_FILE, META_FILE = "model.onnx", "vocab.json", "meta.json"
WORD = re.compile(r"[\w']+")
SCORE_DECIMALS = 4


class SentimentModelMeta(BaseModel):
    """meta.json: see the module docstring."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: str = Field(min_length=1)
    encoding: Literal["bag_of_words", "token_ids"]
    output: str = Field(min_length=1)
    output_kind: Literal["probabilities", "logits"] = "probabilities"
    labels: list[str] = Field(min_length=2)
    lowercase: bool = True
    unknown_token: str | None = None
    max_tokens: int = Field(default=256, ge=1)
    mask_input: str | None = None

    @field_validator("labels")
    @classmethod
    def _reads_polarity(cls, labels: list[str]) -> list[str]:
        missing = {"negative", "positive"} - set(labels)
        if missing:
            raise ValueError(f"must name {' and '.join(sorted(missing))}")
        if len(set(labels)) != len(labels):
            raise ValueError("must be unique")
        return labels


class OnnxSentimentScorer:
    """Text → P(positive) - P(negative) with an ONNX classifier (an `InteractionScorer`)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.meta = _read_meta(folder / META_FILE)
        self.vocab = _read_vocab(folder / VOCAB_FILE)
        self._session = _open_model(folder / MODEL_FILE, self.meta)
        self._negative = self.meta.labels.index("negative")
        self._positive = self.meta.labels.index("positive")
        self._unknown = self.vocab.get(self.meta.unknown_token or "")

    def __call__(self, text: str) -> float:
        scores = self._session.run([self.meta.output], self._inputs(text))[0]
        classes = np.asarray(scores, dtype=np.float64).reshape(-1)
        if classes.size != len(self.meta.labels):
            raise InvalidInput(
                f"{self.folder / MODEL_FILE}: gives {classes.size} scores, but "
                f"{META_FILE} labels name {len(self.meta.labels)}"
            )
        if self.meta.output_kind == "logits":
            classes = np.exp(classes - classes.max())
            classes /= classes.sum()
        return round(float(classes[self._positive] - classes[self._negative]), SCORE_DECIMALS)

    def _inputs(self, text: str) -> dict[str, np.ndarray]:
        words = WORD.findall(text.lower() if self.meta.lowercase else text)
        known = [self.vocab.get(word, self._unknown) for word in words]
        ids = [i for i in known if i is not None]
        if self.meta.encoding == "bag_of_words":
            counts = np.bincount(ids, minlength=len(self.vocab)).astype(np.float32)
            return {self.meta.input: counts.reshape(1, -1)}
        # an empty text still needs one token: the unknown one, else id 0
        row = ids[: self.meta.max_tokens] or [self._unknown or 0]
        feed = {self.meta.input: np.array([row], dtype=np.int64)}
        if self.meta.mask_input:
            feed[self.meta.mask_input] = np.ones((1, len(row)), dtype=np.int64)
        return feed


def load_sentiment_scorer(folder: str | Path | None) -> InteractionScorer:
    """The scorer for a RETENTION_SENTIMENT_MODEL value: VADER when unset or empty."""
    if folder is None or not str(folder).strip():
        return vader_score
    path = Path(folder)
    if not path.is_dir():
        raise InvalidInput(f"RETENTION_SENTIMENT_MODEL: {path}: no such folder")
    return OnnxSentimentScorer(path)


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise InvalidInput(f"{path}: missing (a sentiment model folder holds {_FILES})")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{path}:{exc.lineno}: not JSON ({exc.msg})") from exc
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{path}: not UTF-8 text") from exc


def _read_meta(path: Path) -> SentimentModelMeta:
    try:
        return SentimentModelMeta.model_validate(_read_json(path))
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(map(str, problem["loc"])) or "top level"
        raise InvalidInput(f"{path}: {where}: {problem['msg']}") from exc


def _read_vocab(path: Path) -> dict[str, int]:
    vocab = _read_json(path)
    if not isinstance(vocab, dict) or not vocab:
        raise InvalidInput(f"{path}: must be a non-empty object of token → id")
    bad = [t for t, i in vocab.items() if isinstance(i, bool) or not isinstance(i, int) or i < 0]
    if bad:
        raise InvalidInput(f"{path}: token {bad[0]!r}: its id must be a whole number >= 0")
    return vocab


def _open_model(path: Path, meta: SentimentModelMeta) -> Any:  # onnxruntime has no type hints
    if not path.is_file():
        raise InvalidInput(f"{path}: missing (a sentiment model folder holds {_FILES})")
    import onnxruntime

    try:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors for a bad file
        raise InvalidInput(f"{path}: not an ONNX model onnxruntime can load ({exc})") from exc
    names = {
        "input": {i.name for i in session.get_inputs()},
        "output": {o.name for o in session.get_outputs()},
    }
    wanted = [("input", meta.input), ("output", meta.output)]
    if meta.mask_input:
        wanted.append(("input", meta.mask_input))
    for kind, name in wanted:
        if name not in names[kind]:
            raise InvalidInput(
                f"{path.parent / META_FILE}: {kind} {name!r} is not one of the model's "
                f"{kind}s ({', '.join(sorted(names[kind]))})"
            )
    return session


_FILES = f"{MODEL_FILE}, {VOCAB_FILE} and {META_FILE}"
