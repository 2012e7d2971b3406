"""Fine-tuning metrics against scikit-learn, scipy and seqeval on random inputs, and the reading
comprehension scores and MRR on hand-computed cases."""
import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as sk

from ernie.finetune import metrics
from ernie.finetune.qa_metrics import cmrc_scores, cmrc_segments, squad_scores


@pytest.mark.parametrize("seed", range(5))
def test_classification_metrics_equal_sklearn(seed):
    rng = np.random.default_rng(seed)
    n_classes = 2 + seed % 3
    labels, predictions = rng.integers(0, n_classes, 200), rng.integers(0, n_classes, 200)
    assert metrics.accuracy(labels, predictions) == pytest.approx(sk.accuracy_score(labels, predictions))
    assert metrics.matthews_corrcoef(labels, predictions) == pytest.approx(sk.matthews_corrcoef(labels, predictions))
    binary_l, binary_p = labels % 2, predictions % 2
    assert metrics.f1(binary_l, binary_p) == pytest.approx(sk.f1_score(binary_l, binary_p))


@pytest.mark.filterwarnings("ignore:A single label was found")
def test_degenerate_cases_follow_sklearn():
    same = np.ones(10, dtype=int)
    assert metrics.matthews_corrcoef(same, same) == sk.matthews_corrcoef(same, same) == 0.0
    zeros = np.zeros(10, dtype=int)
    assert metrics.f1(zeros, zeros) == 0.0


@pytest.mark.parametrize("seed", range(5))
def test_correlations_equal_scipy(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=100)
    y = x + rng.normal(size=100)
    ties = np.round(rng.uniform(0, 5, 100) * 2) / 2  # STS-B-like scores with many ties
    assert metrics.pearson(x, y) == pytest.approx(stats.pearsonr(x, y)[0])
    assert metrics.spearman(x, y) == pytest.approx(stats.spearmanr(x, y)[0])
    assert metrics.spearman(ties, y) == pytest.approx(stats.spearmanr(ties, y)[0])


@pytest.mark.parametrize("seed", range(5))
def test_chunk_f1_equals_seqeval(seed):
    from seqeval.metrics import f1_score, precision_score, recall_score
    rng = np.random.default_rng(seed)
    tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    gold = [[tags[i] for i in rng.integers(0, 5, rng.integers(1, 30))] for _ in range(40)]
    pred = [[t if rng.random() < 0.7 else tags[rng.integers(0, 5)] for t in seq] for seq in gold]
    got = metrics.chunk_f1(gold, pred)
    assert got["f1"] == pytest.approx(f1_score(gold, pred))
    assert got["precision"] == pytest.approx(precision_score(gold, pred))
    assert got["recall"] == pytest.approx(recall_score(gold, pred))


def test_bio_chunks_hand_case():
    assert metrics.bio_chunks(["B-PER", "I-PER", "O", "I-LOC", "B-LOC", "B-LOC", "I-ORG"]) == {
        ("PER", 0, 2), ("LOC", 3, 4), ("LOC", 4, 5), ("LOC", 5, 6), ("ORG", 6, 7)}


def test_mrr_hand_case():
    # q1: relevant candidate ranked 2nd -> 1/2; q2: ranked 1st -> 1; q3: no relevant candidate -> 0
    # (counted, as the released NLPCC-DBQA evaluation counts it): (1/2 + 1 + 0) / 3.
    qids = ["q1", "q1", "q1", "q2", "q2", "q3"]
    labels = [0, 1, 0, 1, 0, 0]
    scores = [0.9, 0.5, 0.1, 0.3, 0.2, 0.8]
    assert metrics.mean_reciprocal_rank(qids, labels, scores) == pytest.approx(0.5)


def test_squad_scores_hand_cases():
    answers = {"a": ["the Eiffel Tower", "Eiffel Tower"], "b": ["in 1889"], "c": ["Paris, France"]}
    predictions = {"a": "Eiffel tower!", "b": "1889", "c": "France"}
    scores = squad_scores(predictions, answers)
    # a: exact after normalisation; b: F1 of {1889} vs {in, 1889} = 2/3; c: {france} vs {paris, france} = 2/3
    assert scores["em"] == pytest.approx(100 / 3)
    assert scores["f1"] == pytest.approx(100 * (1 + 2 / 3 + 2 / 3) / 3)


def test_cmrc_scores_hand_cases():
    assert cmrc_segments("北京 2008年奥运会，abc def") == ["北", "京", "2008", "年", "奥", "运", "会", "abc", "def"]
    answers = {"a": ["《红楼梦》"], "b": ["北京大学"], "c": ["1998年"]}
    predictions = {"a": "红楼梦", "b": "北京的大学", "c": "1998年"}
    scores = cmrc_scores(predictions, answers)
    # a: equal without punctuation; b: longest common run 北京 (2 of 5 predicted, 2 of 4 gold)
    f1_b = 2 * (2 / 5) * (2 / 4) / (2 / 5 + 2 / 4)
    assert scores["em"] == pytest.approx(200 / 3)
    assert scores["f1"] == pytest.approx(100 * (1 + f1_b + 1) / 3)


@pytest.mark.parametrize("prediction, answer, official", [
    ("3.14", "3.15", 0.0), ("2.5万", "1.5万", 0.5), ("1.5", "1.5万", 2 / 3), ("1,000美元", "2,000美元", 2 / 3),
    ("u.s.", "u.s.军", 0.8), ("don't", "do", 2 / 3)])
def test_cmrc_f1_splits_numbers_and_words_as_the_official_script(prediction, answer, official):
    """The F1 of CMRC 2018's evaluate script (ymcui/cmrc2018, nltk 3.8.1) on answers with a decimal
    number, a thousands separator, an abbreviation, a contraction: a regular expression split
    `3.14` into three segments, so a wrong number earned two thirds of the credit."""
    assert cmrc_scores({"q": prediction}, {"q": [answer]})["f1"] == pytest.approx(100 * official)


def test_missing_prediction_is_an_error():
    with pytest.raises(KeyError, match="no prediction"):
        squad_scores({}, {"q": ["x"]})
