"""The model-based rules with the real offline models: MiniLM meaning rule, langid language rule."""

from __future__ import annotations

import numpy as np
import pytest

from paraclip_pipeline import schema
from paraclip_pipeline.filtering.apply import REJECT_DETAIL, apply_filter_rules
from paraclip_pipeline.filtering.rules import FilterRulesError
from paraclip_pipeline.modeling.pretrained import minilm_model_dir
from paraclip_pipeline.modeling.sentence_encoder import SentenceEncoder, paired_cosine
from paraclip_pipeline_tests.filtering.builders import pairs_table, rule, rule_set

CAPTION = "A brown dog running on a sandy beach"
PARAPHRASE = "A brown dog runs along the sandy shore"
UNRELATED = "Quarterly tax forms stacked on an office desk"


@pytest.fixture(scope="module")
def encoder() -> SentenceEncoder:
    return SentenceEncoder(batch_size=4)


def test_embeddings_are_unit_float32_and_batch_independent(encoder: SentenceEncoder) -> None:
    texts = [CAPTION, "dog", PARAPHRASE, "", "Ünïcödé café ☕ !!!", UNRELATED]
    together = encoder.encode(texts)
    assert together.shape == (len(texts), encoder.dimension) and together.dtype == np.float32
    assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    alone = np.vstack([encoder.encode([text]) for text in texts])
    assert np.allclose(together, alone, atol=1e-5)  # padding does not leak into the mean
    assert encoder.encode([]).shape == (0, encoder.dimension)


def test_identical_texts_are_encoded_once(
    encoder: SentenceEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []
    original = encoder._encode_batch

    def recording(texts: list[str]) -> np.ndarray:
        seen.extend(texts)
        return original(texts)

    monkeypatch.setattr(encoder, "_encode_batch", recording)
    embeddings = encoder.encode([CAPTION, UNRELATED, CAPTION, CAPTION])
    assert sorted(seen) == sorted([CAPTION, UNRELATED])
    assert np.array_equal(embeddings[0], embeddings[2])


def test_matches_sentence_transformers_reference(encoder: SentenceEncoder) -> None:
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(minilm_model_dir()), device="cpu")
    texts = [CAPTION, PARAPHRASE, UNRELATED]
    expected = reference.encode(texts, normalize_embeddings=True)
    assert np.allclose(encoder.encode(texts), expected, atol=1e-4)


def test_paraphrase_scores_above_unrelated_sentence(encoder: SentenceEncoder) -> None:
    caption, paraphrase, unrelated = encoder.encode([CAPTION, PARAPHRASE, UNRELATED])
    cosines = paired_cosine(np.vstack([caption, caption]), np.vstack([paraphrase, unrelated]))
    assert cosines[0] > 0.7 and cosines[1] < 0.3


def test_paired_cosine_unnormalised_zero_rows_and_shape_check() -> None:
    a = np.array([[3.0, 0.0], [1.0, 1.0], [0.0, 0.0]], dtype=np.float32)
    b = np.array([[2.0, 0.0], [-1.0, -1.0], [1.0, 0.0]], dtype=np.float32)
    assert paired_cosine(a, b).tolist() == pytest.approx([1.0, -1.0, 0.0])
    with pytest.raises(ValueError, match="one shape"):
        paired_cosine(a, b[:2])


def test_meaning_rule_rejects_the_paraphrase_that_lost_the_meaning(
    encoder: SentenceEncoder,
) -> None:
    rows = [
        {},
        {schema.PARAPHRASE_2: UNRELATED},
        {schema.PARAPHRASE_1: UNRELATED, schema.PARAPHRASE_2: UNRELATED},
    ]
    outcome = apply_filter_rules(pairs_table(*rows), rule_set(rule("meaning_kept")), encoder)
    assert outcome.kept[schema.CAPTION_ID].to_pylist() == ["c000"]
    assert outcome.rejected[schema.REJECTED_BY].to_pylist() == ["meaning_kept"] * 2
    details = outcome.rejected[REJECT_DETAIL].to_pylist()
    assert details[0].startswith("cosine(text, paraphrase_2)=") and details[0].endswith("< 0.4")
    assert details[1].startswith("cosine(text, paraphrase_1)=")


def test_language_rule_with_langid() -> None:
    rows = [
        {},
        {schema.TEXT: "Ein Hund spielt im Schnee mit einem roten Ball"},
        {schema.PARAPHRASE_2: "Un chien brun court sur la plage de sable"},
        {schema.TEXT: "Frisches Brot"},  # too short to judge
    ]
    outcome = apply_filter_rules(pairs_table(*rows), rule_set(rule("language")), None)
    assert outcome.kept[schema.CAPTION_ID].to_pylist() == ["c000", "c003"]
    details = outcome.rejected[REJECT_DETAIL].to_pylist()
    assert details[0].startswith("text reads as 'de' (p=")
    assert details[1].startswith("paraphrase_2 reads as 'fr' (p=")
    keep_german = rule_set(rule("language", keep=["en", "de"], columns=["text"]))
    assert len(apply_filter_rules(pairs_table(*rows), keep_german, None).kept) == 4


def test_language_rule_unknown_code_is_a_rules_error() -> None:
    rules = rule_set(rule("language", keep=["en"], candidates=["en", "xx"]))
    with pytest.raises(FilterRulesError, match=r"rule 'language': langid does not know.*'xx'"):
        apply_filter_rules(pairs_table({}), rules, None)
