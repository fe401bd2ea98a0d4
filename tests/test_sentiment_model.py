"""A sentiment model plugged in by path (RETENTION_SENTIMENT_MODEL): tiny ONNX classifiers built
here with the onnx helper API (nothing downloaded), the folder format and its refusals."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from factories import make_customer
from onnx import TensorProto, helper, numpy_helper
from sqlalchemy import Engine
from sqlmodel import Session, select

from activities.assess import AssessActivities, AssessInput
from retention.errors import InvalidInput
from retention.rulebook.loader import load_rulebook
from retention.rulebook.source import RulebookSource
from retention.runtime.settings import ROOT, Settings
from retention.scoring.assessment import assess_customer
from retention.scoring.sentiment import vader_score
from retention.scoring.sentiment_model import OnnxSentimentScorer, load_sentiment_scorer
from retention.store.tables import SentimentRow

AT = datetime(2026, 1, 15, tzinfo=UTC)
ANGRY = "This is unacceptable. Your product is broken again and I am furious."
THANKFUL = "Thank you so much, the team was wonderful and really helpful!"
NEUTRAL = "Please see the attached export."
NEGATIVE_WORDS = ["unacceptable", "broken", "furious", "terrible", "slow", "cancel", "angry"]
POSITIVE_WORDS = ["thank", "wonderful", "helpful", "great", "love", "excellent", "happy"]
NEUTRAL_WORDS = ["please", "see", "the", "attached", "export", "team"]
VOCAB = NEGATIVE_WORDS + POSITIVE_WORDS + NEUTRAL_WORDS  # 20 words
LABELS = ["negative", "neutral", "positive"]


def word_weights(labels: list[str]) -> np.ndarray:
    """vocabulary x labels: each polar word pushes its class by 2, a neutral word by 0.5."""
    weights = np.zeros((len(VOCAB), len(labels)), dtype=np.float32)
    for row, word in enumerate(VOCAB):
        if word in NEGATIVE_WORDS:
            weights[row, labels.index("negative")] = 2.0
        elif word in POSITIVE_WORDS:
            weights[row, labels.index("positive")] = 2.0
        elif "neutral" in labels:
            weights[row, labels.index("neutral")] = 0.5
    return weights


def bag_of_words_model() -> onnx.ModelProto:
    """softmax(counts @ W + b): a linear bag-of-words classifier over the 20-word vocabulary."""
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["tokens", "W"], ["logits"]),
            helper.make_node("Add", ["logits", "b"], ["raw"]),
            helper.make_node("Softmax", ["raw"], ["scores"], axis=-1),
        ],
        "bag_of_words_sentiment",
        [helper.make_tensor_value_info("tokens", TensorProto.FLOAT, [1, len(VOCAB)])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, len(LABELS)])],
        [
            numpy_helper.from_array(word_weights(LABELS), "W"),
            numpy_helper.from_array(np.zeros(len(LABELS), dtype=np.float32), "b"),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def token_ids_model() -> onnx.ModelProto:
    """sum over tokens of an embedding lookup (Gather): logits for [negative, positive], as a
    transformer with a word-level vocabulary is fed (ids in text order plus a mask)."""
    embedding = np.vstack([word_weights(["negative", "positive"]), np.zeros((1, 2), np.float32)])
    graph = helper.make_graph(
        [
            helper.make_node("Gather", ["E", "input_ids"], ["embedded"]),
            helper.make_node("Cast", ["attention_mask"], ["mask"], to=TensorProto.FLOAT),
            helper.make_node("Unsqueeze", ["mask", "last"], ["mask3"]),
            helper.make_node("Mul", ["embedded", "mask3"], ["kept"]),
            helper.make_node("ReduceSum", ["kept", "tokens_axis"], ["logits"], keepdims=0),
        ],
        "token_ids_sentiment",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, None]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, [1, None]),
        ],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 2])],
        [
            numpy_helper.from_array(embedding, "E"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "tokens_axis"),
            numpy_helper.from_array(np.array([-1], dtype=np.int64), "last"),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def write_folder(
    folder: Path, model: onnx.ModelProto, vocab: dict[str, int], meta: dict[str, Any]
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    onnx.checker.check_model(model)
    onnx.save(model, str(folder / "model.onnx"))
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "meta.json").write_text(json.dumps(meta, indent=2))
    return folder


BAG_META = {"input": "tokens", "encoding": "bag_of_words", "output": "scores", "labels": LABELS}


@pytest.fixture
def bag_folder(tmp_path: Path) -> Path:
    vocab = {word: i for i, word in enumerate(VOCAB)}
    return write_folder(tmp_path / "bag", bag_of_words_model(), vocab, BAG_META)


def test_a_bag_of_words_model_reads_polarity_on_vaders_scale(bag_folder: Path) -> None:
    score = load_sentiment_scorer(str(bag_folder))

    assert isinstance(score, OnnxSentimentScorer)
    assert score(ANGRY) < -0.9 and score(THANKFUL) > 0.9
    assert abs(score(NEUTRAL)) < 0.05 and score("") == 0.0  # only neutral mass, or none
    # P(positive) - P(negative) by hand: "terrible" alone → logits (2, 0, 0)
    expected = (1 - np.exp(2)) / (np.exp(2) + 2)
    assert score("TERRIBLE!") == pytest.approx(expected, abs=1e-4)


def test_a_token_ids_model_with_logits_and_a_mask(tmp_path: Path) -> None:
    vocab = {word: i for i, word in enumerate(VOCAB)} | {"[UNK]": len(VOCAB)}
    meta = {
        "input": "input_ids",
        "encoding": "token_ids",
        "output": "logits",
        "output_kind": "logits",
        "labels": ["negative", "positive"],
        "unknown_token": "[UNK]",
        "mask_input": "attention_mask",
        "max_tokens": 8,
    }
    score = load_sentiment_scorer(write_folder(tmp_path / "ids", token_ids_model(), vocab, meta))

    assert score(ANGRY) < -0.9 and score(THANKFUL) > 0.9 and score("zebra") == 0.0
    # only the first 8 words are read: the late praise is cut off
    assert score("terrible " + "x " * 7 + "wonderful wonderful") < -0.7


def test_unset_is_vader_and_the_assessment_uses_the_folder_when_set(
    bag_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RETENTION_SENTIMENT_MODEL", raising=False)
    assert load_sentiment_scorer(Settings().sentiment_model) is vader_score
    monkeypatch.setenv("RETENTION_SENTIMENT_MODEL", str(bag_folder))
    score = load_sentiment_scorer(Settings().sentiment_model)
    angry = make_customer(
        support={"tickets_90d": 1, "interactions": [{"at": AT, "channel": "ticket", "text": ANGRY}]}
    )

    reading = assess_customer(angry, load_rulebook(ROOT / "rules"), AT, sentiment=score).sentiment

    assert reading is not None and reading.source == "interactions"
    assert reading.recent == score(ANGRY) != vader_score(ANGRY)


@pytest.mark.database
def test_the_assess_activity_records_the_models_score(engine: Engine, bag_folder: Path) -> None:
    thankful = make_customer(
        profile={"customer_id": "cust-onnx"},
        support={
            "tickets_90d": 1,
            "interactions": [{"at": AT, "channel": "chat", "text": THANKFUL}],
        },
    )
    activities = AssessActivities(
        engine, RulebookSource(ROOT / "rules"), sentiment=load_sentiment_scorer(bag_folder)
    )

    activities.assess(AssessInput(journey_id="j-onnx", customer_id="cust-onnx", customer=thankful))

    with Session(engine) as db:
        row = db.exec(select(SentimentRow)).one()
    assert row.score == OnnxSentimentScorer(bag_folder)(THANKFUL) > 0.9


@pytest.mark.parametrize(
    ("breakage", "refusal"),
    [
        (lambda f: (f / "meta.json").unlink(), r"bag/meta\.json: missing"),
        (lambda f: (f / "model.onnx").unlink(), r"bag/model\.onnx: missing"),
        (
            lambda f: (f / "meta.json").write_text('{\n  "input": tokens\n}'),
            r"meta\.json:2: not JSON",
        ),
        (
            lambda f: (f / "meta.json").write_text(
                json.dumps(BAG_META | {"labels": ["bad", "good"]})
            ),
            r"meta\.json: labels: .*must name negative and positive",
        ),
        (
            lambda f: (f / "meta.json").write_text(json.dumps(BAG_META | {"input": "text"})),
            r"meta\.json: input 'text' is not one of the model's inputs \(tokens\)",
        ),
        (lambda f: (f / "vocab.json").write_text('{"broken": -1}'), r"vocab\.json: token 'broken'"),
        (
            lambda f: (f / "model.onnx").write_bytes(b"not a model"),
            r"model\.onnx: not an ONNX model",
        ),
    ],
)
def test_a_broken_folder_is_refused_naming_the_file(
    bag_folder: Path, breakage: Any, refusal: str
) -> None:
    breakage(bag_folder)
    with pytest.raises(InvalidInput, match=refusal):
        load_sentiment_scorer(bag_folder)


def test_a_missing_folder_is_refused_naming_the_setting(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"RETENTION_SENTIMENT_MODEL: .*nowhere: no such folder"):
        load_sentiment_scorer(tmp_path / "nowhere")
