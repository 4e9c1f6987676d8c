"""Embedders: the offline n-gram embedder, the process-wide factory, and the real fastembed path.

No model weights can be downloaded here, so the fastembed path runs a tiny model built at test time: an ONNX
graph (token embedding lookup, masked; external data file like BGE-M3's `onnx/model.onnx_data`) and a
WordLevel tokenizer, registered through `register_custom_model`, the code that registers BGE-M3.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from sqlalchemy.ext.asyncio import AsyncSession
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

from salesbot.knowledge.embeddings import (
    BGE_M3,
    CustomModelSpec,
    EmbeddingError,
    EmbeddingMemo,
    FastEmbedEmbedder,
    OfflineEmbedder,
    build_embedder,
    get_embedder,
    register_custom_model,
)
from salesbot.knowledge.ingest import ingest_product_file
from salesbot.knowledge.search import HybridSearch
from salesbot.settings import Settings
from tests.fakes.embedder import RecordingEmbedder
from tests.knowledge.test_ingest_products import write_csv

# ---- offline embedder ---------------------------------------------------------------------------------------


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b)


def test_offline_vectors_are_normalized_and_sized_by_settings() -> None:
    embedder = OfflineEmbedder(384)
    matrix = embedder.embed_many(["HP LaserJet printer", "ноутбук", "طابعة"])
    assert matrix.shape == (3, 384)
    assert matrix.dtype == np.float32
    assert np.allclose(np.linalg.norm(matrix, axis=1), 1.0, atol=1e-5)
    assert embedder.name == "offline-ngram-v1-384"
    assert embedder.dim == 384
    assert not np.any(embedder.embed_one("the and of"))  # nothing but stopwords: a zero vector
    with pytest.raises(ValueError, match="at least 8"):
        OfflineEmbedder(4)


def test_offline_vectors_are_identical_across_processes() -> None:
    """No Python hash randomization: a vector stored by one process matches a query embedded by another."""
    texts = ["Monochrome laser printer", "Ноутбук для бизнеса", "لابتوب أعمال"]
    local = OfflineEmbedder(256).embed_many(texts)
    script = (
        "import json, sys\n"
        "from salesbot.knowledge.embeddings import OfflineEmbedder\n"
        "print(json.dumps(OfflineEmbedder(256).embed_many(json.loads(sys.argv[1])).tolist()))\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", script, json.dumps(texts)],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "12345", "PATH": "/usr/bin:/bin"},
    ).stdout
    assert np.array_equal(np.array(json.loads(output), dtype=np.float32), local)


def test_offline_similarity_is_lexical_semantic_in_three_languages() -> None:
    embedder = OfflineEmbedder(1024)
    vec = embedder.embed_one
    printer = vec("Monochrome laser printer HP LaserJet, duplex. طابعة ليزر. Лазерный принтер.")
    chair = vec("Ergonomic office chair with lumbar support. كرسي مكتب. Офисное кресло.")
    pairs = [
        ("laser printers", printer, chair),
        ("الطابعة الليزر", printer, chair),  # article prefixes and letter variants fold
        ("лазерные принтеры", printer, chair),  # inflection shares n-grams
        ("кресла для офиса", chair, printer),
        ("كرسي", chair, printer),
    ]
    for query, related, unrelated in pairs:
        assert cosine(vec(query), related) > cosine(vec(query), unrelated) + 0.1, query
    assert cosine(vec("Ёлка"), vec("елка")) == pytest.approx(1.0)


async def test_offline_documents_and_query_agree() -> None:
    embedder = OfflineEmbedder(128)
    texts = [f"product number {index}" for index in range(40)]  # above the inline batch size
    documents = await embedder.embed_documents(texts)
    assert documents.shape == (40, 128)
    assert np.array_equal(documents[7], await embedder.embed_query(texts[7]))


def test_get_embedder_builds_one_embedder_per_process(settings: Settings) -> None:
    first = get_embedder(settings)
    assert get_embedder(settings.model_copy()) is first
    assert isinstance(first, OfflineEmbedder)
    assert first.dim == settings.embedding.dim
    other = settings.model_copy(update={"embedding": settings.embedding.model_copy(update={"dim": 256})})
    assert get_embedder(other) is not first
    assert get_embedder(other).dim == 256
    # EMBEDDING_THREADS is part of how the model runs: another value is another embedder.
    threaded = settings.model_copy(update={"embedding": settings.embedding.model_copy(update={"threads": 2})})
    assert get_embedder(threaded) is not first


# ---- fastembed with a tiny model built here -----------------------------------------------------------------

TINY_DIM = 1024
VOCABULARY = [
    "laser",
    "printer",
    "mono",
    "colour",
    "duplex",
    "laptop",
    "business",
    "notebook",
    "monitor",
    "inch",
    "chair",
    "office",
    "ergonomic",
    "mesh",
    "router",
    "wifi",
    "switch",
    "toner",
    "cartridge",
    "black",
    "hp",
    "lenovo",
    "dell",
    "canon",
    "logitech",
    "mouse",
    "keyboard",
    "wireless",
]


def build_tiny_model(folder: Path) -> Path:
    """A 1024-dim "model": token embedding lookup times the attention mask, saved like BGE-M3's export."""
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    vocab = {token: index for index, token in enumerate(specials + VOCABULARY)}
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])]
    )
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 64, "pad_token": "[PAD]"}))
    (folder / "special_tokens_map.json").write_text(
        json.dumps({"pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]"})
    )
    (folder / "config.json").write_text(json.dumps({"pad_token_id": 0, "hidden_size": TINY_DIM}))

    table = np.random.default_rng(3).normal(size=(len(vocab), TINY_DIM)).astype(np.float32)
    table[vocab["[CLS]"]] = table[vocab["[SEP]"]] = 0.0  # special tokens carry no meaning
    nodes = [
        helper.make_node("Gather", ["table", "input_ids"], ["gathered"]),
        helper.make_node("Cast", ["attention_mask"], ["mask_float"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["mask_float", "last_axis"], ["mask_3d"]),
        helper.make_node("Mul", ["gathered", "mask_3d"], ["last_hidden_state"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny-encoder",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "sequence"]),
        ],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "sequence", TINY_DIM])],
        initializer=[numpy_helper.from_array(table, "table"), numpy_helper.from_array(np.array([-1]), "last_axis")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    (folder / "onnx").mkdir(exist_ok=True)
    # The weights go to onnx/model.onnx_data, as in BGE-M3's export (small constants stay inline).
    onnx.save_model(model, str(folder / "onnx" / "model.onnx"), save_as_external_data=True, location="model.onnx_data")
    assert (folder / "onnx" / "model.onnx_data").stat().st_size >= table.nbytes
    return folder


TINY = CustomModelSpec(
    name="salesbot-tests/tiny-encoder",
    dim=TINY_DIM,
    hf_repo="salesbot-tests/tiny-encoder",
    pooling="MEAN",  # BGE-M3 pools CLS; a lookup-only model needs the mean to depend on the text
    normalization=True,
    model_file="onnx/model.onnx",
    additional_files=("onnx/model.onnx_data",),
)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    register_custom_model(TINY)
    register_custom_model(TINY)  # idempotent
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="module")
def tiny_embedder(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> FastEmbedEmbedder:
    return FastEmbedEmbedder(
        TINY.name, model_path=str(tiny_model), cache_dir=str(tmp_path_factory.mktemp("cache")), batch_size=2
    )


async def test_fastembed_embeds_with_the_registered_model(tiny_embedder: FastEmbedEmbedder) -> None:
    assert (tiny_embedder.name, tiny_embedder.dim) == (TINY.name, 1024)
    documents = await tiny_embedder.embed_documents(
        ["HP laser printer mono duplex", "Lenovo business laptop", "ergonomic mesh office chair", "wireless mouse"]
    )
    assert documents.shape == (4, 1024)
    assert documents.dtype == np.float32
    assert np.allclose(np.linalg.norm(documents, axis=1), 1.0, atol=1e-5)
    query = await tiny_embedder.embed_query("laser printer")
    scores = documents @ query
    assert int(np.argmax(scores)) == 0
    assert scores[0] > 0.5
    # Mean of the word vectors: the same words in another order give the same vector.
    assert np.allclose(await tiny_embedder.embed_query("printer laser"), query, atol=1e-6)
    assert (await tiny_embedder.embed_documents([])).shape == (0, 1024)


async def test_fastembed_loads_once_per_embedder(tiny_embedder: FastEmbedEmbedder) -> None:
    await tiny_embedder.warm_up()
    model = tiny_embedder.load()
    await tiny_embedder.embed_query("toner")
    assert tiny_embedder.load() is model


async def test_search_with_the_fastembed_model(
    tiny_embedder: FastEmbedEmbedder, db_session: AsyncSession, tmp_path: Path
) -> None:
    rows = [
        "P-1,HP laser printer,mono duplex,Printers,999,AED,3,HP\n",
        "P-2,Lenovo business laptop,notebook,Laptops,3299,AED,5,Lenovo\n",
        "P-3,Ergonomic mesh chair,office chair,Furniture,749,AED,9,Falcon\n",
    ]
    report = await ingest_product_file(db_session, write_csv(tmp_path / "p.csv", rows), tiny_embedder)
    assert report.embedded == 3
    hits = await HybridSearch(db_session, tiny_embedder).search_products("ergonomic office chair", limit=1)
    assert [hit.sku for hit in hits] == ["P-3"]


def test_bge_m3_is_registered_as_a_custom_model(tmp_path: Path) -> None:
    from fastembed import TextEmbedding

    embedder = FastEmbedEmbedder(BGE_M3.name, cache_dir=str(tmp_path))  # lazy: nothing is loaded yet
    assert (embedder.name, embedder.dim) == ("BAAI/bge-m3", 1024)
    description = next(d for d in TextEmbedding.list_supported_models() if d["model"] == BGE_M3.name)
    assert description["dim"] == 1024
    assert description["sources"]["hf"] == "BAAI/bge-m3"
    assert description["model_file"] == "onnx/model.onnx"
    assert description["additional_files"] == ["onnx/model.onnx_data"]


def test_a_missing_model_fails_fast_and_clearly(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_model: Path
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(EmbeddingError, match=r"HF_HUB_OFFLINE.*EMBEDDING_MODEL_PATH"):
        FastEmbedEmbedder(BGE_M3.name, cache_dir=str(tmp_path)).load()
    # Not offline, but the hub does not answer (a closed local port stands in for a blocked network).
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    with pytest.raises(EmbeddingError, match="hub is unreachable"):
        FastEmbedEmbedder(BGE_M3.name, cache_dir=str(tmp_path)).load()

    incomplete = tmp_path / "incomplete"
    (incomplete / "onnx").mkdir(parents=True)
    (incomplete / "onnx" / "model.onnx").write_bytes((tiny_model / "onnx" / "model.onnx").read_bytes())
    with pytest.raises(EmbeddingError, match=r"missing tokenizer\.json"):
        FastEmbedEmbedder(TINY.name, model_path=str(incomplete))
    with pytest.raises(EmbeddingError, match="unknown embedding model"):
        FastEmbedEmbedder("nobody/no-such-model")


def test_settings_choose_the_embedder(settings: Settings, tiny_model: Path, tmp_path: Path) -> None:
    assert isinstance(build_embedder(settings), OfflineEmbedder)
    configured = settings.model_copy(
        update={
            "embedding": settings.embedding.model_copy(
                update={"model": TINY.name, "model_path": str(tiny_model), "cache_dir": str(tmp_path)}
            )
        }
    )
    embedder = build_embedder(configured)
    assert isinstance(embedder, FastEmbedEmbedder)
    assert (embedder.name, embedder.dim, embedder.cache_dir) == (TINY.name, 1024, str(tmp_path))


@pytest.mark.parametrize("threads", [None, 2])
def test_onnxruntime_runs_on_the_configured_threads(
    settings: Settings, tiny_model: Path, tmp_path: Path, threads: int | None
) -> None:
    """onnxruntime's default, a thread per core, keeps its threads spinning between a serving process's calls
    (bench/bench_embed_threads.py): EMBEDDING_THREADS (default 1) reaches the inference session."""
    update: dict[str, object] = {"model": TINY.name, "model_path": str(tiny_model), "cache_dir": str(tmp_path)}
    if threads is not None:
        update["threads"] = threads
    configured = settings.model_copy(update={"embedding": settings.embedding.model_copy(update=update)})
    embedder = build_embedder(configured)
    assert isinstance(embedder, FastEmbedEmbedder)
    session = embedder.load().model.model  # fastembed's TextEmbedding -> its ONNX model -> the InferenceSession
    assert session.get_session_options().intra_op_num_threads == (threads or 1)


# --- the process's memo of recent vectors -----------------------------------------------------------------------


async def test_the_memo_embeds_each_text_once_and_returns_the_same_vectors() -> None:
    memo = EmbeddingMemo()
    embedder = RecordingEmbedder(OfflineEmbedder(64))

    first = await memo.documents(embedder, ["laser printer", "office chair", "laser printer"])
    again = await memo.documents(embedder, ["office chair", "standing desk", "laser printer"])

    expected = await OfflineEmbedder(64).embed_documents(["laser printer", "office chair", "standing desk"])
    assert np.array_equal(first, expected[[0, 1, 0]])
    assert np.array_equal(again, expected[[1, 2, 0]])
    assert embedder.documents == ["laser printer", "office chair", "standing desk"]
    assert embedder.document_calls == 2
    assert np.array_equal(await memo.query(embedder, "laser printer"), expected[0])
    assert np.array_equal(await memo.query(embedder, "laser printer"), expected[0])
    # Queries and documents are kept apart (some models embed them differently).
    assert embedder.queries == ["laser printer"]


async def test_the_memo_never_shares_vectors_between_embedders() -> None:
    memo = EmbeddingMemo()
    small, large = RecordingEmbedder(OfflineEmbedder(64)), RecordingEmbedder(OfflineEmbedder(128))
    renamed = RecordingEmbedder(OfflineEmbedder(64), model_name="another-model")

    assert (await memo.query(small, "laser printer")).shape == (64,)
    assert (await memo.query(large, "laser printer")).shape == (128,)
    await memo.query(renamed, "laser printer")
    assert [small.queries, large.queries, renamed.queries] == [["laser printer"]] * 3


async def test_vectors_from_the_memo_are_copies() -> None:
    memo = EmbeddingMemo()
    embedder = OfflineEmbedder(64)
    vector = await memo.query(embedder, "laser printer")
    vector[:] = 0
    matrix = await memo.documents(embedder, ["laser printer"])
    matrix[:] = 0
    assert np.array_equal(await memo.query(embedder, "laser printer"), await embedder.embed_query("laser printer"))
    assert np.array_equal(
        await memo.documents(embedder, ["laser printer"]), await embedder.embed_documents(["laser printer"])
    )
