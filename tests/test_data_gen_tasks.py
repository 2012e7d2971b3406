"""Each task's labels against hand-computed cases."""
import math
from collections import Counter

import numpy as np
import pytest

from data_gen.documents import Sentence
from data_gen.tokenized import ChunkTokenizer, Lexicon
from ernie_common.tokenization import FullTokenizer
from ernie_tasks import knowledge_masking as km
from ernie_tasks.capitalization import case_labels
from ernie_tasks.discourse_relation import MarkerList
from ernie_tasks.ir_relevance import IRRELEVANT, STRONG, WEAK, Click, relevance_pairs
from ernie_tasks.sentence_distance import ADJACENT, OTHER_DOCUMENT, SAME_DOCUMENT, choose_pair
from ernie_tasks.sentence_reordering import class_permutation, num_classes, permutation_class, split_and_shuffle
from ernie_tasks.token_document import token_document_labels


def _tokenizer(vocab, lang, stopwords=(), pinned=()):
    return ChunkTokenizer(FullTokenizer(vocab, do_lower_case=True), lang, Lexicon(set(stopwords), pinned))


@pytest.fixture(scope="module")
def en(en_vocab):
    return _tokenizer(en_vocab, "en")


@pytest.fixture(scope="module")
def zh(zh_vocab):
    return _tokenizer(zh_vocab, "zh")


def _sentence_labels(chunk, labels, tokenizer, s):
    """{token: label} over sentence s of a chunk."""
    a, b = chunk.sentence_tokens[s], chunk.sentence_tokens[s + 1]
    return dict(zip(tokenizer.tokenizer.convert_ids_to_tokens(chunk.ids[a:b]), labels[a:b].tolist()))


def _units(chunk, seg, tokenizer):
    """The knowledge units of a chunk as strings of their tokens."""
    tokens = tokenizer.tokenizer.convert_ids_to_tokens(chunk.ids)
    starts = np.flatnonzero(seg == 0).tolist() + [len(tokens)]
    return [" ".join(tokens[a:b]).replace(" ##", "") for a, b in zip(starts, starts[1:])]


# ---- sentence reordering ----------------------------------------------------------------------

@pytest.mark.parametrize("perm,label", [((0,), 0), ((0, 1), 1), ((1, 0), 2), ((0, 1, 2), 3), ((0, 2, 1), 4),
                                        ((2, 1, 0), 8), ((0, 1, 2, 3), 9), ((0, 1, 3, 2), 10), ((3, 2, 1, 0), 32)])
def test_permutation_classes_in_canonical_order(perm, label):
    assert permutation_class(perm) == label
    assert class_permutation(label, 4) == perm


def test_thirty_three_classes_for_four_segments():
    assert num_classes(4) == 33 and num_classes(3) == 9
    assert len({class_permutation(k, 4) for k in range(33)}) == 33
    with pytest.raises(ValueError):
        class_permutation(33, 4)


def test_split_and_shuffle_covers_the_paragraph_in_permuted_order():
    rng = np.random.default_rng(0)
    labels = Counter()
    for _ in range(2000):
        segments, perm, label = split_and_shuffle(6, 4, rng)
        original = [None] * len(perm)
        for position, index in enumerate(perm):
            original[index] = segments[position]
        assert [s for r in original for s in range(*r)] == list(range(6))  # contiguous, complete
        assert permutation_class(perm) == label
        labels[label] += 1
    assert len(labels) == 33 and min(labels.values()) > 30  # balanced over the 33 classes


def test_short_paragraph_allows_fewer_segments():
    rng = np.random.default_rng(1)
    assert {split_and_shuffle(2, 4, rng)[2] for _ in range(100)} == {0, 1, 2}


# ---- sentence distance ------------------------------------------------------------------------

def test_distance_classes_hand_computed():
    rng = np.random.default_rng(0)
    seen = {}
    for _ in range(200):
        label, b_range = choose_pair(5, 0, 2, 1, True, rng)
        seen.setdefault(label, set()).add(b_range)
    assert seen[ADJACENT] == {(2, 3)}                     # right after A = sentences 0-1
    assert seen[SAME_DOCUMENT] == {(3, 4), (4, 5)}         # at least one sentence between
    assert seen[OTHER_DOCUMENT] == {None}
    # a two-sentence document: only adjacency, or another document
    assert {choose_pair(2, 0, 1, 1, False, rng)[0] for _ in range(20)} == {ADJACENT}
    assert choose_pair(1, 0, 1, 1, False, rng) is None


def test_distance_class_with_fewest_examples_goes_first():
    rng = np.random.default_rng(0)
    # a two-sentence document allows adjacency or another document; adjacency is behind
    assert choose_pair(2, 0, 1, 1, True, rng, counts=(3, 0, 5))[0] == ADJACENT
    # the emptiest class is one this document cannot give: the fewest among the allowed
    assert choose_pair(2, 0, 1, 1, True, rng, counts=(6, 0, 5))[0] == OTHER_DOCUMENT
    # over a stream of short documents the classes stay balanced
    counts = [0, 0, 0]
    for n in rng.integers(2, 6, 3000):
        label, _ = choose_pair(int(n), 0, 1, 1, True, rng, counts)
        counts[label] += 1
    assert max(counts) - min(counts) <= 1


# ---- capitalization ---------------------------------------------------------------------------

def test_capitalised_word_under_an_uncased_vocab(en):
    chunk = en([Sentence("The Senate met in Washingtonville on 5 May.")])
    tokens = en.tokenizer.convert_ids_to_tokens(chunk.ids)
    assert all(t == t.lower() for t in tokens)  # the vocabulary is uncased
    labels = case_labels(chunk)
    by_token = dict(zip(tokens, labels.tolist()))
    assert by_token["the"] == 1 and by_token["senate"] == 1 and by_token["met"] == 0 and by_token["may"] == 1
    assert by_token["5"] == -1 and by_token["."] == -1  # no cased letter
    pieces = [i for i, t in enumerate(tokens) if t.startswith("##")]
    assert pieces and all(labels[i] == -1 for i in pieces)  # only a word's first piece


# ---- token-document relation ------------------------------------------------------------------

def test_word_occurring_in_another_segment(en_vocab):
    en = _tokenizer(en_vocab, "en", stopwords={"is", "not"})
    chunk = en([Sentence("Paris is big."), Sentence("America is old."), Sentence("Paris again, not America.")])
    # one document, segments [sentences 0-1] and [sentence 2]
    labels = token_document_labels(chunk, np.array([0, 0, 1]), np.array([0, 0]))
    first, second, third = (_sentence_labels(chunk, labels, en, s) for s in range(3))
    assert first["paris"] == 1 and first["big"] == 0 and first["is"] == -1 and first["."] == -1
    assert second["america"] == 1 and second["old"] == 0
    assert third["paris"] == 1 and third["america"] == 1 and third["again"] == 0 and third["not"] == -1
    # a document of one segment has nothing to relate to
    assert (token_document_labels(chunk, np.array([0, 0, 0]), np.array([0])) == -1).all()
    # nor do the words of two documents of one segment each
    assert (token_document_labels(chunk, np.array([0, 0, 1]), np.array([0, 1])) == -1).all()


def test_corpus_word_without_a_token_of_its_own_still_occurs(zh):
    """A subword token may straddle two corpus words (１９ + ９８ read as the pieces １９９, ##８):
    the second word has no token, yet it occurs in its segment."""
    vocab = zh.tokenizer.vocab
    digits = "０１２３４５６７８９"
    token = next(t for t in vocab if len(t) == 2 and all(c in digits for c in t))
    whole = token[0] + token[1]
    a = Sentence(f"在{whole}年", f"在/p  {token[0]}/m  {token[1]}/m  年/q")
    b = Sentence(f"有{token[1]}人", f"有/v  {token[1]}/m  人/n")
    chunk = zh([a, b])
    assert whole in zh.tokenizer.convert_ids_to_tokens(chunk.ids)  # one token over two words
    labels = token_document_labels(chunk, np.array([0, 1]), np.array([0, 0]))
    assert _sentence_labels(chunk, labels, zh, 1)[token[1]] == 1


# ---- knowledge masking ------------------------------------------------------------------------

def _knowledge(chunk, lang, phrase_pairs=np.zeros((0, 2), np.int64), entities=frozenset()):
    seg_basic = np.where(chunk.basic_start, 0, 1).astype(np.int8)
    return (seg_basic,) + km.knowledge_segments(chunk, lang, phrase_pairs, set(entities), seg_basic)


def test_peoples_daily_entity_is_one_unit(zh):
    chunk = zh([Sentence("江泽民发表新年讲话。", "江/nr  泽民/nr  发表/v  新年/t  讲话/n  。/w")])
    seg_basic, seg_knowledge, counts = _knowledge(chunk, "zh")
    assert seg_basic.tolist() == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0]  # characters
    # 江泽民 (江 + 泽民 merged into one person name) | 发表 | 新年 | 讲话 | 。
    assert seg_knowledge.tolist() == [0, 1, 1, 0, 1, 0, 1, 0, 1, 0]
    assert counts == {"entity_units": 1, "phrase_units": 3}


def test_english_entities_phrases_and_entity_list(en_vocab):
    en = _tokenizer(en_vocab, "en", stopwords={"and", "the"}, pinned=["health", "care"])
    chunk = en([Sentence("And the United States Congress passed the health care bill in New York."),
                Sentence("Senate Majority met. Care Act")])
    pairs = en.lexicon.ids(["health", "care"]).reshape(-1, 2)
    seg_basic, seg_knowledge, counts = _knowledge(chunk, "en", pairs, {("new", "york")})
    units = _units(chunk, seg_knowledge, en)
    assert {"united states congress", "health care", "new york", "senate majority", "care act"} <= set(units)
    assert "and" in units and not any(u.startswith("and ") for u in units)  # sentence-initial "And" stays out
    assert "york . senate" not in " | ".join(units)  # no unit crosses a sentence
    assert counts == {"entity_units": 4, "phrase_units": 1}
    assert len(_units(chunk, seg_basic, en)) == len(np.flatnonzero(chunk.word_start))  # basic units: words


def test_phrases_that_overlap_are_taken_left_to_right(en_vocab):
    en = _tokenizer(en_vocab, "en", pinned=["a", "b", "c"])
    chunk = en([Sentence("x a b c b c")])
    pairs = en.lexicon.ids(["a", "b", "b", "c", "c", "b"]).reshape(-1, 2)
    _, seg_knowledge, counts = _knowledge(chunk, "en", pairs)
    assert _units(chunk, seg_knowledge, en) == ["x", "a b", "c b", "c"]
    assert counts["phrase_units"] == 2


def test_word_ids_stay_true_across_a_lexicon_reset(en_vocab, en_lines):
    """The cased-word cache holds lexicon ids, so it must go with every reset of the lexicon."""
    en = ChunkTokenizer(FullTokenizer(en_vocab), "en", Lexicon(max_words=50))
    for start in range(0, 300, 100):
        chunk = en([Sentence(line) for line in en_lines[start:start + 100]])
        tokens = en.tokenizer.convert_ids_to_tokens(chunk.ids)
        first_piece = {chunk.word[i]: t for i, t in enumerate(tokens) if chunk.word_start[i]}
        words = [en.lexicon.words[i] for i in chunk.lexeme.tolist()]
        assert all(words[w].startswith(t) or t == "[UNK]" for w, t in first_piece.items())
    assert len(en.lexicon.words) < 2000  # it was reset


def test_pinned_words_are_not_counted_against_the_lexicon_bound():
    """The phrase words stay put however many there are; only the other words fill the lexicon."""
    pinned = ["p%d" % i for i in range(80)]
    lexicon = Lexicon(pinned=pinned, max_words=50)
    lexicon.ids(["w%d" % i for i in range(50)])
    assert not lexicon.maybe_reset() and len(lexicon.words) == 130
    lexicon.ids(["x"])
    assert lexicon.maybe_reset() and lexicon.words == pinned
    assert lexicon.ids(pinned).tolist() == list(range(80))


def test_long_sentence_cut_inside_a_word(en):
    chunk = en([Sentence("Short one."), Sentence("Washingtonville " * 6 + "end."), Sentence("Last.")])
    per_word = np.bincount(chunk.word, minlength=len(chunk.lexeme))
    budget = int(per_word.max()) + 1  # a cut falls inside a word of several pieces
    stats = Counter()
    cut, source = chunk.split_long(budget, stats)
    assert stats["long_sentence_split"] == 1
    assert source.tolist()[0] == 0 and source.tolist()[-1] == 2 and len(source) > 3
    assert (cut.sentence_lengths() <= budget).all() and cut.sentence_tokens[-1] == len(chunk.ids)
    assert cut.word_start[cut.sentence_tokens[:-1]].all()  # every piece starts a word
    token_sentence = np.repeat(np.arange(cut.n_sentences), cut.sentence_lengths())
    assert (cut.word_sentence[cut.word] == token_sentence).all()  # a word lies in one piece
    assert (cut.lexeme[cut.word] == chunk.lexeme[chunk.word]).all()  # the halves keep the word


def test_masking_takes_whole_units_and_80_10_10():
    seg = np.array([-1, 0, 1, 1, 0, 0, 1, -1], np.int8)  # units: [1..3], [4], [5..6]
    ids = np.arange(100, 108, dtype=np.int32)
    rng = np.random.default_rng(0)
    unit_sets = [{1, 2, 3}, {4}, {5, 6}]
    outcome = Counter()
    for _ in range(3000):
        masked, pos, labels = km.mask_units(ids, seg, rng, vocab_size=5000, mask_id=3, first_normal_id=5)
        assert set(pos.tolist()) in unit_sets  # round(0.15 * 3) -> at least one whole unit
        assert labels.tolist() == ids[pos].tolist()
        for p in pos:
            outcome["mask" if masked[p] == 3 else "keep" if masked[p] == ids[p] else "random"] += 1
    total = sum(outcome.values())
    assert abs(outcome["mask"] / total - 0.8) < 0.02
    assert abs(outcome["random"] / total - 0.1) < 0.02 and abs(outcome["keep"] / total - 0.1) < 0.02


def test_a_batch_without_units_to_mask_feeds_one_ignored_row():
    """Examples of special tokens only: no position to gather (an empty gather stops the step)."""
    from data_gen.data_task import BatchContext
    from data_gen.examples import Example
    task = km.KnowledgeMasking(km.KnowledgeMaskingOptions(masking="online"))
    seg = np.full(3, -1, np.int8)
    examples = [Example(np.array([1, 100, 2]), np.zeros(3, np.int64), {"seg_basic": seg, "seg_knowledge": seg})] * 2
    batch = BatchContext(np.random.default_rng(0), [ex.src_ids.copy() for ex in examples], 5000, 3, 5)
    assert {k: v.tolist() for k, v in task.batch_labels(examples, 3, batch).items()} == {"mask_pos": [0], "mask_label": [-1]}
    seg[1] = 0  # the same example twice, now with one unit each: it is masked
    feeds = task.batch_labels(examples, 3, batch)
    assert feeds["mask_pos"].tolist() == [1, 4] and feeds["mask_label"].tolist() == [100, 100]


def test_collocations_find_frequent_pairs():
    """Pairs are counted within a sentence only."""
    colloc = km.Collocations(min_count=3, min_pmi=1.0, stopwords={"the", "a"})
    for _ in range(5):
        colloc.count(["Social security and health care matter.", "Budget is a matter of record."])
    assert ("social", "security") in colloc.finish().phrases and ("health", "care") in colloc.phrases
    assert not any("the" in p for p in colloc.phrases)
    assert ("matter", "budget") not in colloc.phrases and ("record", "social") not in colloc.phrases


def test_collocation_counts_stay_within_their_bound_on_a_growing_vocabulary():
    """Every batch brings new words and pairs; the table never holds more than its bound, and
    the frequent phrases (counts far above the pruning threshold) are still found."""
    rng = np.random.default_rng(0)
    colloc = km.Collocations(min_count=20, min_pmi=1.0, max_pairs=2000, max_words=1500)
    letters = "abcdefghijklmnopqrstuvwxyz"
    fresh = ("x" + "".join(letters[(i // 26 ** k) % 26] for k in range(4)) for i in range(26 ** 4))
    for _ in range(40):
        batch = []
        for _ in range(50):
            words = [next(fresh) for _ in range(int(rng.integers(5, 12)))]
            batch.append(" ".join(["social", "security"] + words + ["health", "care"]))
        colloc.count(batch)
        assert colloc.n_pairs <= 2000 and colloc.n_words <= 1500
    assert colloc.pruned_below >= 1
    phrases = colloc.finish().phrases
    assert ("social", "security") in phrases and ("health", "care") in phrases
    assert not any(a.startswith("x") and b.startswith("x") for a, b in phrases)


def test_collocations_are_exact_while_the_bound_is_not_reached():
    sentences = ["the cat sat on the mat", "a cat sat", "the mat sat on a cat"] * 7
    bounded = km.Collocations(min_count=2, min_pmi=0.1, max_pairs=10**6)
    for i in range(0, len(sentences), 4):
        bounded.count(sentences[i:i + 4])
    whole = km.Collocations(min_count=2, min_pmi=0.1)
    whole.count(sentences)
    assert bounded.pruned_below == 0 and bounded.finish().phrases == whole.finish().phrases


def test_collocations_keep_the_best_scored_phrases_up_to_max_phrases():
    """Counted in batches, scored as one list sorted by (PMI x log count, first word, second
    word) would be, and cut at `max_phrases`: equal scores go to the later words."""
    rng = np.random.default_rng(1)
    words = ["w" + chr(ord("a") + i) for i in range(26)] + ["of", "the"]
    sentences = [" ".join(rng.choice(words, int(rng.integers(2, 9)))) for _ in range(400)]
    sentences += ["alpha beta", "gamma delta"] * 6  # two pairs scored alike
    unigrams, pairs = Counter(), Counter()
    for text in sentences:
        tokens = text.split()
        unigrams.update(tokens)
        pairs.update(zip(tokens, tokens[1:]))
    total = sum(unigrams.values())
    scored = sorted(((math.log(n * total / (unigrams[a] * unigrams[b])) * math.log(n), a, b)
                     for (a, b), n in pairs.items()
                     if n >= 3 and "the" not in (a, b) and "of" not in (a, b)
                     and math.log(n * total / (unigrams[a] * unigrams[b])) >= 0.5), reverse=True)
    for max_phrases in (1, 5, 40, 10_000):
        colloc = km.Collocations(min_count=3, min_pmi=0.5, max_phrases=max_phrases, stopwords={"the", "of"})
        for i in range(0, len(sentences), 37):
            colloc.count(sentences[i:i + 37])
        assert colloc.pruned_below == 0
        assert colloc.finish().phrases == {(a, b) for _, a, b in scored[:max_phrases]}
    assert scored[0][1:] == ("gamma", "delta") and scored[1][1:] == ("alpha", "beta")


# ---- discourse relation -----------------------------------------------------------------------

def test_discourse_markers():
    markers = MarkerList(["however", "on the other hand", "on", "for example"], "en")
    assert markers.match("However, the plan failed.") == (0, "The plan failed.")
    assert markers.match("On the other hand we won.") == (1, "We won.")
    assert markers.match("Howevers are rare.") is None
    assert markers.match("However,") is None  # nothing left after the marker
    zh = MarkerList(["但", "但是", "因此"], "zh")
    assert zh.match("但是，我们成功了。") == (1, "我们成功了。")
    assert zh.match("因此我们成功了。") == (2, "我们成功了。")


# ---- IR relevance -----------------------------------------------------------------------------

def test_ir_labels_from_a_click_log():
    log = [Click("cheap flights", "Cheap flights to Rome", 12, 40), Click("cheap flights", "Hotel deals", 0, 30),
           Click("weather", "Weather in Rome today", 3, 5), Click("weather", "Never shown", 0, 0)]
    stats = Counter()
    pairs = relevance_pairs(log, np.random.default_rng(0), stats)
    assert ("cheap flights", "Cheap flights to Rome", STRONG) in pairs
    assert ("cheap flights", "Hotel deals", WEAK) in pairs
    assert ("weather", "Weather in Rome today", STRONG) in pairs
    irrelevant = [(q, t) for q, t, label in pairs if label == IRRELEVANT]
    assert len(irrelevant) == 2
    assert all(t not in {c.title for c in log if c.query == q} for q, t in irrelevant)
    assert stats["skipped/ir_pair_without_impressions"] == 1
