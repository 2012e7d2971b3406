"""What a data config checks when it is loaded, before `make` reads the corpus: the stop words and
the files the tasks' options name are read, and a value numpy would refuse mid-run is refused."""
import pytest
import yaml

from data_gen.__main__ import main
from data_gen.config import DataConfig, DataConfigError
from ernie_tasks.discourse_relation import MarkerList
from tests.conftest import DEMO_CORPUS, REPO

VOCAB = REPO / "configs/stopwords/en.txt"  # any file: these configs are loaded, never made


def _config_file(tmp_path, **values) -> str:
    path = tmp_path / "data.yaml"
    path.write_text(yaml.safe_dump({"input": str(DEMO_CORPUS), "vocab": str(VOCAB), "output": str(tmp_path / "out"),
                                    **values}))
    return str(path)


def _markers(tmp_path, text: bytes, name="markers.yaml") -> dict:
    (tmp_path / name).write_bytes(text)
    return {"tasks": ["discourse_relation"],
            "task_options": {"discourse_relation": {"discourse_markers": str(tmp_path / name)}}}


def test_stop_words_not_in_utf8_are_a_one_line_error_naming_file_line_and_byte(tmp_path, capsys):
    (tmp_path / "stop.txt").write_bytes("the\ncaf\u00e9\n".encode("latin-1"))
    config = _config_file(tmp_path, stopwords=str(tmp_path / "stop.txt"))
    assert main(["make", "--config", config, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: {config}: stopwords: {tmp_path / 'stop.txt'}: line 2, byte 7 (0xe9): not utf-8 text: "
                   "convert it to UTF-8 (e.g. iconv -f latin-1 -t utf-8)\n")
    assert not (tmp_path / "out").exists()  # refused before make started


@pytest.mark.parametrize("text,message", [
    (b"lang: en\n", r"markers.yaml: missing key\(s\) \['markers'\]"),
    (b"markers: [however, thus\n", r"markers.yaml: not valid YAML"),
    (b"markers: []\n", r"markers.yaml: markers: the list is empty"),
    (b"markers: [however, thus, However]\n", r"markers.yaml: markers\[2\]: 'however' is listed twice \(as markers\[0\] too\)"),
    (b"markers: [however]\nlang: fr\n", r"markers.yaml: lang must be en or zh, got 'fr'"),
])
def test_a_bad_discourse_marker_file_is_refused_when_the_config_is_loaded(tmp_path, text, message):
    with pytest.raises(DataConfigError, match=rf"^{tmp_path / 'data.yaml'}: task_options.discourse_relation: .*{message}"):
        DataConfig.from_yaml(_config_file(tmp_path, **_markers(tmp_path, text)))


def test_the_shipped_marker_lists_load():
    for lang in ("en", "zh"):
        markers = MarkerList.from_yaml(REPO / f"configs/discourse/{lang}.yaml")
        assert markers.lang == lang and len(set(markers.markers)) == len(markers.markers) > 10


def test_a_negative_seed_is_an_error_naming_the_config_and_key(tmp_path):
    config = _config_file(tmp_path, seed=-1)
    with pytest.raises(DataConfigError, match=rf"^{config}: seed must be at least 0 .*got -1$"):
        DataConfig.from_yaml(config)
    assert DataConfig.from_yaml(config, ["seed=0"]).seed == 0


def test_an_entity_list_not_in_utf8_is_refused_when_the_config_is_loaded(tmp_path):
    (tmp_path / "entities.txt").write_bytes("new york\nz\u00fcrich\n".encode("latin-1"))
    config = _config_file(tmp_path, tasks=["knowledge_masking"],
                          task_options={"knowledge_masking": {"entities": str(tmp_path / "entities.txt")}})
    with pytest.raises(DataConfigError, match=rf"^{config}: task_options.knowledge_masking: .*entities.txt: line 2, "
                                              r"byte 10 \(0xfc\): not utf-8 text: convert it to UTF-8"):
        DataConfig.from_yaml(config)


def test_a_click_log_not_in_utf8_is_named_and_the_corpus_encoding_not_advised(tmp_path):
    from collections import Counter

    from data_gen.documents import CorpusError
    from ernie_tasks.ir_relevance import read_click_log
    (tmp_path / "clicks.tsv").write_bytes("caf\u00e9\tcafe menu\t3\t10\n".encode("latin-1"))
    with pytest.raises(CorpusError, match=r"clicks.tsv: line 1, byte 3 \(0xe9\): not utf-8 text: convert it to UTF-8"):
        read_click_log(tmp_path / "clicks.tsv", Counter())


@pytest.mark.parametrize("content, says", [
    ("q\tgood title\t1\t2\n" * 3 + "caf\u00e9\tcafe menu\t3\t10\n", r"clicks.tsv: line 4, byte 54 \(0xe9\): not utf-8"),
    ("q\ttitle only\nq\tt\tx\ty\n", r"clicks.tsv: no line of query<TAB>title<TAB>clicks<TAB>impressions .* among its "
                                    r"2 non-blank line\(s\)")])
def test_a_bad_click_log_is_refused_when_the_config_is_loaded(tmp_path, content, says):
    """`make` reads the log for its examples after the whole corpus: a line that is not UTF-8 at
    its end, or a log of no usable line, stopped it there, hours in on a large corpus."""
    (tmp_path / "clicks.tsv").write_bytes(content.encode("latin-1"))
    config = _config_file(tmp_path, tasks=["knowledge_masking", "ir_relevance"],
                          task_options={"ir_relevance": {"click_log": str(tmp_path / "clicks.tsv")}})
    with pytest.raises(DataConfigError, match=rf"^{config}: task_options.ir_relevance: .*{says}"):
        DataConfig.from_yaml(config)
