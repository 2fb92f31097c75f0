"""Eight simultaneous gradio_client clients against the Space: each gets its own question's answer, exactly as
the engine computes it alone, within its own budget, while the queue keeps at most `concurrency` running."""

from concurrent.futures import ThreadPoolExecutor

import pytest

from hf_s1 import ThinkingBudget
from hf_s1.engines.transformers import generate_with_budget

CONCURRENCY = 2
# question, min thinking tokens, max thinking tokens, number of Waits
REQUESTS = [
    ("What is 12 * 7?", 4, 12, 2),
    ("What is 15% of 80?", 0, 8, 1),
    ("Solve for x: 3x + 5 = 20.", 6, 16, 0),
    ("What is 9 squared?", 2, 10, 1),
    ("How many sides does a hexagon have?", 0, 6, 0),
    ("What is 100 divided by 4?", 8, 14, 2),
    ("What is the next prime after 7?", 0, 12, 1),
    ("What is 2 to the power 5?", 3, 9, 1),
]
ANSWER_TOKENS = 8


@pytest.fixture(scope="module")
def served(serve_space):
    with serve_space(max_thinking_tokens=32, max_answer_tokens=ANSWER_TOKENS, concurrency=CONCURRENCY,
                     queue_size=16) as served:
        yield served


def test_eight_clients_get_their_own_bounded_answers(served, model, tokenizer):
    from gradio_client import Client

    url, runtime = served

    def ask(request):
        question, low, high, waits = request
        client = Client(url, verbose=False)
        return client.predict(question, [], [], low, high, waits, "Wait", "", 0, False, api_name="/ask")

    with ThreadPoolExecutor(len(REQUESTS)) as pool:
        replies = list(pool.map(ask, REQUESTS))

    for (question, low, high, waits), (chat, _, meter, details) in zip(REQUESTS, replies):
        got = details["forced"]
        assert low <= got["thinking_tokens"] <= high, (question, got)
        assert got["budget"]["max_thinking_tokens"] == high and got["budget"]["num_waits"] == waits
        # No cross-talk between clients (gradio 6 sends message content as a list of typed parts).
        content = chat[0]["content"]
        text = content if isinstance(content, str) else "".join(p.get("text", "") for p in content)
        assert chat[0]["role"] == "user" and text == question
        assert f"{got['thinking_tokens']} / {high} thinking tokens" in meter
        # The answer the engine gives this question alone, with the same budget, greedy.
        budget = ThinkingBudget(min_thinking_tokens=low, max_thinking_tokens=high, num_waits=waits,
                                max_answer_tokens=ANSWER_TOKENS)
        ref = generate_with_budget(model, tokenizer, question, budget)[0]
        assert (got["thinking_tokens"], got["waits"], got["capped"], got["answer"]) == (
            ref.thinking_tokens, ref.waits, ref.capped, ref.answer), question
        assert got["answer_tokens"] <= ANSWER_TOKENS

    assert runtime.completed == len(REQUESTS)
    assert 1 <= runtime.peak_in_flight <= CONCURRENCY  # the queue bounded the running generations
