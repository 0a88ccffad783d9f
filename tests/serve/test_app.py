"""The FastAPI app on tiny packed students, through FastAPI's TestClient: the answers are
runtime.Predictor's, concurrent requests are batched and each gets its own answer, PaddleNLP's client
request shape works, bad requests get a 4xx with a message, and no input crashes or hangs it."""

import json
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from paddle_binbert import runtime
from paddle_binbert.serve import Limits, ServeConfig, build_app, create_app, load_predictor

TEXTS = [
    "a gripping , funny film",
    ["the cat sat on the mat", "a cat is sitting"],
    "",
    "the film is long and the story goes on and on " * 20,
    "Zürich ☃ naïve CAFÉ !!",
]
QA = [
    {"question": "Who wrote it?", "context": "It was written by Ann Lee in 1990."},
    {"question": "Where does the Danube rise?", "context": "The Danube rises in the Black Forest. " * 6},
    {"question": "", "context": ""},
]
CLS_URL = "/taskflow/text_classification"
QA_URL = "/taskflow/question_answering"


def _as_json(value):
    return json.loads(json.dumps(value))


class Counting:
    """A predictor that records the number of inputs of each call (and can fail or be slow)."""

    def __init__(self, predictor, delay=0.0, fail_on=None):
        self.predictor, self.delay, self.fail_on = predictor, delay, fail_on
        self.sizes = []
        self.lock = threading.Lock()

    def __getattr__(self, name):
        return getattr(self.predictor, name)

    def __call__(self, items):
        with self.lock:
            self.sizes.append(len(items))
        if self.fail_on is not None and self.fail_on in items:
            raise RuntimeError("kernel exploded")
        time.sleep(self.delay)
        return self.predictor(items)


@pytest.fixture(scope="module")
def cls_predictor(cls_folder):
    return load_predictor(ServeConfig(path=str(cls_folder), max_length=32, num_threads=1, max_batch_size=8))


@pytest.fixture(scope="module")
def qa_predictor(qa_folder):
    return load_predictor(ServeConfig(path=str(qa_folder), max_length=32, num_threads=1, max_batch_size=8))


@pytest.fixture(scope="module")
def cls_client(cls_predictor):
    with TestClient(create_app(cls_predictor, max_wait_ms=0, limits=Limits(4096, 8, 1000))) as client:
        yield client


@pytest.fixture(scope="module")
def qa_client(qa_predictor):
    with TestClient(create_app(qa_predictor, max_wait_ms=0)) as client:
        yield client


# ------------------------------------------------------------------------------ answers
@pytest.mark.parametrize("top_k", [None, 1, 2, 3, 5])
def test_classification_equals_predictor(cls_client, cls_folder, top_k):
    body = {"data": {"text": TEXTS}}
    if top_k is not None:
        body["parameters"] = {"top_k": top_k}
    response = cls_client.post(CLS_URL, json=body)
    assert response.status_code == 200, response.text
    reference = runtime.Predictor(cls_folder, max_length=32, num_threads=1, top_k=top_k or 1)
    expected = reference([tuple(t) if isinstance(t, list) else t for t in TEXTS])
    assert response.json() == {"result": _as_json(expected)}
    assert {p["label"] for r in response.json()["result"] for p in r["predictions"]} <= {
        "negative",
        "neutral",
        "positive",
    }


def test_classification_input_forms(cls_client, cls_predictor):
    def post(data):
        response = cls_client.post(CLS_URL, json={"data": data})
        assert response.status_code == 200, response.text
        return response.json()["result"]

    single = post({"text": "a gripping , funny film"})
    assert single == post("a gripping , funny film") == post(["a gripping , funny film"])
    assert len(single) == 1 and single[0]["text"] == "a gripping , funny film"
    pair = post({"text": "the cat sat on the mat", "text_pair": "a cat is sitting"})
    assert pair == post({"text": [["the cat sat on the mat", "a cat is sitting"]]})
    assert pair == post({"text": ["the cat sat on the mat"], "text_pair": ["a cat is sitting"]})
    assert pair[0]["text"] == ["the cat sat on the mat", "a cat is sitting"]
    assert pair != single


def test_question_answering_equals_predictor(qa_client, qa_folder):
    expected = _as_json(runtime.Predictor(qa_folder, max_length=32, num_threads=1)(QA))
    forms = [
        {"text": QA},
        QA,
        {"question": [q["question"] for q in QA], "context": [q["context"] for q in QA]},
    ]
    for data in forms:
        response = qa_client.post(QA_URL, json={"data": data, "parameters": {}})
        assert response.status_code == 200, response.text
        assert response.json() == {"result": expected}
    for data in (QA[0], {"text": QA[0]}):
        assert qa_client.post(QA_URL, json={"data": data}).json() == {"result": expected[:1]}
    answer = expected[0]
    assert answer["answer"] == QA[0]["context"][answer["start"] : answer["end"]]


def test_paddlenlp_client_request(cls_client, cls_predictor):
    """The request of PaddleNLP's simple-serving clients: json.dumps'ed body, Content-Type header, the
    Taskflow handler's {"text": ...} and parameters the server does not use."""
    texts = ["a gripping , funny film", "dull and long"]
    payload = {"data": {"text": texts}, "parameters": {"max_seq_len": 128, "batch_size": 2, "prob_limit": 0.5}}
    response = cls_client.post(CLS_URL, headers={"Content-Type": "application/json"}, content=json.dumps(payload))
    assert response.status_code == 200
    datas = json.loads(response.text)
    assert [r["text"] for r in datas["result"]] == texts
    assert datas["result"] == _as_json([dict(r, predictions=r["predictions"][:1]) for r in cls_predictor(texts)])


def test_health(cls_client, qa_client):
    health = cls_client.get("/health").json()
    assert health["status"] == "ok" and health["name"] == "text_classification"
    assert health["route"] == CLS_URL and health["task"] == "text_classification"
    model = health["model"]
    assert model["labels"] == ["negative", "neutral", "positive"] and model["preset"] == "bibert"
    assert model["max_length"] == 32 and model["num_threads"] == 1 and model["num_layers"] == 2
    assert health["limits"]["max_items"] == 8 and health["batching"]["max_wait_ms"] == 0
    assert health["stats"]["requests"] >= 0 and health["stats"]["waiting"] == 0
    qa = qa_client.get("/health").json()
    assert qa["model"]["task"] == "question_answering" and qa["model"]["preset"] == "bit"
    assert qa["model"]["doc_stride"] == 10 and "labels" not in qa["model"]


def test_custom_name(cls_predictor):
    with TestClient(create_app(cls_predictor, name="sst2-bibert")) as client:
        assert client.post("/taskflow/sst2-bibert", json={"data": {"text": "ok"}}).status_code == 200
        response = client.post(CLS_URL, json={"data": {"text": "ok"}})
        assert response.status_code == 404 and "'sst2-bibert'" in response.json()["detail"]
        assert client.get("/health").json()["route"] == "/taskflow/sst2-bibert"
    with pytest.raises(ValueError, match="URL path segment"):
        create_app(cls_predictor, name="a/b")


def test_server_wide_top_k(cls_folder):
    app = build_app(ServeConfig(path=str(cls_folder), max_length=32, num_threads=1, top_k=2, max_wait_ms=0))
    with TestClient(app) as client:
        result = client.post(CLS_URL, json={"data": {"text": "fine"}}).json()["result"]
        assert len(result[0]["predictions"]) == 2
        result = client.post(CLS_URL, json={"data": {"text": "fine"}, "parameters": {"top_k": 1}}).json()["result"]
        assert len(result[0]["predictions"]) == 1


def test_qa_options_rejected_for_a_classifier(cls_folder):
    with pytest.raises(TypeError, match="doc_stride"):
        load_predictor(ServeConfig(path=str(cls_folder), num_threads=1, doc_stride=8))


# ------------------------------------------------------------------------------ batching
def test_concurrent_requests_are_batched(cls_predictor):
    counting = Counting(cls_predictor, delay=0.3)  # the first batch runs long: the others arrive meanwhile
    texts = [f"text number {i} is {'good' if i % 2 else 'bad'}" for i in range(8)]
    expected = {t: r for t, r in zip(texts, _as_json(cls_predictor(texts)))}
    app = create_app(counting, max_batch_size=8, max_wait_ms=400)
    with TestClient(app) as client, ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda t: client.post(CLS_URL, json={"data": {"text": [t]}}), texts))
        stats = client.get("/health").json()["stats"]
    for text, response in zip(texts, responses):
        assert response.status_code == 200, response.text
        (result,) = response.json()["result"]
        assert result["text"] == text
        assert result == dict(expected[text], predictions=expected[text]["predictions"][:1])
    assert sum(counting.sizes) == 8 and max(counting.sizes) > 1, counting.sizes
    assert stats["requests"] == 8 and stats["batch_items_max"] == max(counting.sizes)


def test_model_failure_and_timeout(cls_predictor):
    with TestClient(create_app(Counting(cls_predictor, fail_on="boom"), max_wait_ms=0)) as client:
        response = client.post(CLS_URL, json={"data": {"text": ["fine", "boom"]}})
        assert response.status_code == 500 and "kernel exploded" in response.json()["detail"]
        assert client.post(CLS_URL, json={"data": {"text": "fine"}}).status_code == 200
    with TestClient(create_app(Counting(cls_predictor, delay=1.0), request_timeout_s=0.2)) as client:
        response = client.post(CLS_URL, json={"data": {"text": "slow"}})
        assert response.status_code == 504 and "0.2 s" in response.json()["detail"]


# ------------------------------------------------------------------------------ bad requests
BAD = [
    (b"", 400, "empty request body"),
    (b"{bad", 400, "not valid JSON"),
    (b'{"data": NaN}', 400, "NaN is not valid JSON"),
    (b"\xff\xfe{}", 400, "not UTF-8"),
    (b"[" * 2000 + b"]" * 2000, 400, "nested too deeply"),
    (b'{"data": {"text": "a"}} trailing', 400, "not valid JSON"),
    (b"[]", 422, "must be a JSON object"),
    (b'"text"', 422, "must be a JSON object"),
    (b"null", 422, "got null"),
    (b"{}", 422, "no 'data'"),
    (b'{"text": "a"}', 422, "unknown key(s) ['text']"),
    (b'{"data": null}', 422, "data is null"),
    (b'{"data": {}}', 422, "data has no 'text'"),
    (b'{"data": {"text": []}}', 422, "data is empty"),
    (b'{"data": []}', 422, "data is empty"),
    (b'{"data": {"text": 5}}', 422, "data.text must be a string or an array"),
    (b'{"data": {"text": [1]}}', 422, "data.text[0] must be a string, got number"),
    (b'{"data": {"text": [["a"]]}}', 422, "data.text[0] must be a string or a [text, pair] array"),
    (b'{"data": {"text": [["a", null]]}}', 422, "data.text[0][1] must be a string, got null"),
    (b'{"data": {"text": ["a"], "text_pair": "b"}}', 422, "data.text_pair must be an array"),
    (b'{"data": {"text": "a", "text_pair": 3}}', 422, "data.text_pair must be a string"),
    (b'{"data": {"txt": "a"}}', 422, "unknown key(s) ['txt']"),
    (b'{"data": {"text": "\\ud800"}}', 422, "lone surrogate"),
    (b'{"data": "a", "parameters": []}', 422, "parameters must be an object"),
    (b'{"data": "a", "parameters": {"top_k": 0}}', 422, "parameters.top_k must be an integer >= 1"),
    (b'{"data": "a", "parameters": {"top_k": "2"}}', 422, "parameters.top_k"),
    (b'{"data": "a", "parameters": {"top_k": 1.5}}', 422, "parameters.top_k"),
    (b'{"data": "a", "parameters": {"top_k": true}}', 422, "parameters.top_k"),
    (b'{"data": ["a", "b", "c", "d", "e", "f", "g", "h", "i"]}', 413, "at most 8"),
    (b'{"data": "' + b"x" * 1001 + b'"}', 413, "at most 1000"),
    (b'{"data": "' + b"x" * 5000 + b'"}', 413, "larger than 4096 bytes"),
]


@pytest.mark.parametrize("body,status,message", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_requests(cls_client, body, status, message):
    response = cls_client.post(CLS_URL, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == status, response.text
    assert message in response.json()["detail"]


QA_BAD = [
    ({"data": {"question": "q"}}, "data has no 'context'"),
    ({"data": {"question": "q", "context": 1}}, "data.context must be a string, got number"),
    ({"data": {"question": ["q"], "context": "c"}}, "arrays of the same length"),
    ({"data": {"question": ["q"], "context": ["c", "d"]}}, "arrays of the same length"),
    ({"data": [{"question": "q", "context": "c", "x": 1}]}, "unknown key(s) ['x'] in data[0]"),
    ({"data": "a text"}, "must be an object with 'question' and 'context'"),
    ({"data": {"text": ["a text"]}}, "data.text[0] must be an object"),
    ({"data": []}, "data is empty"),
]


@pytest.mark.parametrize("body,message", QA_BAD)
def test_bad_qa_requests(qa_client, body, message):
    response = qa_client.post(QA_URL, json=body)
    assert response.status_code == 422, response.text
    assert message in response.json()["detail"]


def test_routes_and_sizes(cls_client):
    response = cls_client.post("/taskflow/question_answering", json={"data": "a"})
    assert response.status_code == 404 and "serves 'text_classification'" in response.json()["detail"]
    assert cls_client.get(CLS_URL).status_code == 405
    assert cls_client.post("/nothing", json={}).status_code == 404

    def chunks():  # no Content-Length: the size is checked while reading
        yield b'{"data": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}'

    response = cls_client.post(CLS_URL, content=chunks())
    assert response.status_code == 413 and "4096 bytes" in response.json()["detail"]
    response = cls_client.post(CLS_URL, content=b'{"data": "a"}', headers={"Content-Length": "abc"})
    assert response.status_code == 400


def _random_json(rng: random.Random, depth: int = 0):
    kinds = ["null", "bool", "int", "float", "str", "list", "dict"] if depth < 4 else ["null", "int", "str"]
    kind = rng.choice(kinds)
    if kind == "null":
        return None
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "int":
        return rng.choice([0, 1, -1, 3, 2**63, -(2**70)])
    if kind == "float":
        return rng.choice([0.5, -1e308, 1e-300, 2.0])
    if kind == "str":
        return rng.choice(["", "a film", "question", "context", "text", "\u00e9\u2603", " " * 3, "\x00"])
    if kind == "list":
        return [_random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    keys = ["text", "text_pair", "question", "context", "data", "parameters", "top_k", "x"]
    return {rng.choice(keys): _random_json(rng, depth + 1) for _ in range(rng.randint(0, 3))}


def test_fuzz_random_json_never_crashes(cls_client, qa_client):
    rng = random.Random(0)
    statuses = set()
    for i in range(240):
        value = _random_json(rng)
        shape = i % 4
        body = [value, {"data": value}, {"data": {"text": value}}, {"data": value, "parameters": value}][shape]
        for client, url in ((cls_client, CLS_URL), (qa_client, QA_URL)):
            response = client.post(url, content=json.dumps(body).encode())
            assert response.status_code in (200, 413, 422), (body, response.text)
            payload = response.json()
            assert ("result" in payload) if response.status_code == 200 else isinstance(payload["detail"], str)
            statuses.add(response.status_code)
    assert statuses >= {200, 422}
    for blob in (bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 60))) for _ in range(40)):
        response = cls_client.post(CLS_URL, content=blob)
        assert response.status_code in (200, 400, 413, 422), (blob, response.text)
