"""Watching greedy generation for the verdict: a logits processor that notes the step where each row writes
"fake" or "real" and P(fake) there, and the stopping criterion that ends a row once its verdict is read."""

from __future__ import annotations

from collections.abc import Callable


class VerdictWatch:
    """A logits processor that changes nothing and notes, per row, the first step at which greedy decoding
    picks "fake" or "real" (within `limit` steps) and the softmax over those two logits there.

    It sees the scores generate picks its argmax from (it runs last, and greedy decoding adds no other
    processor), and keeps two numbers a row instead of every step's logits (`output_logits=True` would keep
    about 33 MB per image for 256 steps of a 32k vocabulary).
    """

    def __init__(self, fake: int, real: int, stop: frozenset, start: int, *, limit: int, read_first: bool,
                 echoes: Callable[[list[int]], bool] | None = None):
        self.fake, self.real, self.stop, self.start, self.limit = fake, real, stop, start, limit
        self.read_first = read_first  # forced prefix: read the pair at step 0 whatever is picked
        self.echoes = echoes  # the answer so far repeats the prompt's question: its verdict word is not one
        self.step: list[int | None] = []
        self.p_fake: list[float | None] = []
        self.token: list[int | None] = []  # the token greedy decoding picked at that step
        self._open: list[bool] = []

    def __call__(self, input_ids, scores):
        import torch

        if not self._open:
            n = scores.shape[0]
            self.step, self.p_fake, self.token, self._open = [None] * n, [None] * n, [None] * n, [True] * n
        step = input_ids.shape[1] - self.start
        if step >= self.limit or not any(self._open):
            return scores
        picked = scores.argmax(-1).tolist()
        pair = torch.softmax(scores[:, [self.fake, self.real]].float(), dim=-1)[:, 0].clamp(0.0, 1.0).tolist()
        for row, token in enumerate(picked):
            if not self._open[row]:
                continue
            if self.read_first or (token in (self.fake, self.real) and not (
                    self.echoes is not None and self.echoes([*input_ids[row, self.start:].tolist(), token]))):
                self.step[row], self.p_fake[row], self.token[row], self._open[row] = step, pair[row], token, False
            elif token in self.stop:
                self._open[row] = False
        return scores


class StopWhenRead:
    """Stop each row once the watch has read its verdict or seen its answer end (a verdict word that repeats
    the question does not stop it)."""

    def __init__(self, watch: VerdictWatch):
        self.watch = watch

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        rows = input_ids.shape[0]
        done = [not is_open for is_open in self.watch._open] if self.watch._open else [False] * rows
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

