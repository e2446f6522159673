"""Turn chat turns into token ids and a loss mask with the tokenizer's own chat template.

Only assistant replies carry loss. We find them by rendering the conversation prefix by prefix and
mapping character spans to tokens through the fast tokenizer's offsets, so it works for any template
that renders a conversation as a growing prefix (ChatML, Llama, Gemma, and our plain template).
"""

from __future__ import annotations

from dataclasses import dataclass

IGNORE = -100  # the label value PyTorch's cross-entropy skips


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]

    @property
    def trainable(self) -> int:
        return sum(1 for t in self.labels if t != IGNORE)


@dataclass
class Pair:
    """A preference pair for DPO: the same prompt with the chosen reply and with the rejected one."""

    chosen: Encoded
    rejected: Encoded

    @property
    def input_ids(self) -> list[int]:
        """The longer side: what the length limit and the longest-example figure are about."""
        return max(self.chosen.input_ids, self.rejected.input_ids, key=len)

    @property
    def trainable(self) -> int:
        return self.chosen.trainable + self.rejected.trainable


class TemplateError(ValueError):
    """The chat template does not render this conversation as a growing prefix."""


def render(tokenizer, messages: list[dict], add_generation_prompt: bool = False) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


def render_prompt(tokenizer, messages: list[dict]) -> str:
    """The text a model continues to produce the next assistant reply."""
    return render(tokenizer, messages, add_generation_prompt=True)


def stop_token_ids(tokenizer, model_config=None) -> set[int]:
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    gen_eos = getattr(getattr(model_config, "generation_config", None), "eos_token_id", None) if model_config else None
    if isinstance(gen_eos, int):
        ids.add(gen_eos)
    elif isinstance(gen_eos, list):
        ids.update(gen_eos)
    return ids


def assistant_spans(tokenizer, messages: list[dict]) -> tuple[str, list[tuple[int, int]]]:
    """The full rendered text and the character span of each assistant reply (end of turn included)."""
    full = render(tokenizer, messages)
    spans = []
    for i, turn in enumerate(messages):
        if turn["role"] != "assistant" or turn.get("weight", 1) == 0:  # weight 0: context, never learned
            continue
        before = render(tokenizer, messages[:i], add_generation_prompt=True) if i else ""
        # the last turn's prefix is the whole conversation: one render fewer on the common single-turn row
        upto = full if i == len(messages) - 1 else render(tokenizer, messages[: i + 1])
        if not upto.startswith(before) or not full.startswith(upto):
            raise TemplateError("the chat template does not render this conversation incrementally")
        end = len(upto)
        while end > len(before) and upto[end - 1].isspace():
            end -= 1  # the newline after an end-of-turn token is formatting, not something to learn
        spans.append((len(before), end))
    return full, spans


def encode(tokenizer, messages: list[dict], stop_ids: set[int] | None = None) -> Encoded:
    """Token ids for the whole conversation, with labels only on assistant replies."""
    result = encode_many(tokenizer, [messages], stop_ids)[0]
    if isinstance(result, TemplateError):
        raise result
    return result


def encode_many(tokenizer, conversations: list[list[dict]], stop_ids: set[int] | None = None,
                chunk: int = 2048) -> list[Encoded | TemplateError]:
    """`encode` for many conversations, tokenised in batches by the fast tokenizer (Rust, parallel).

    If the template does not end the last reply with a stop token, one is appended, so the
    tuned model learns to stop. A conversation the template cannot mask gets its TemplateError.
    """
    stop_ids = stop_ids if stop_ids is not None else stop_token_ids(tokenizer)
    results: list[Encoded | TemplateError] = []
    for k in range(0, len(conversations), chunk):
        rendered: list[tuple[str, list[tuple[int, int]]] | TemplateError] = []
        for messages in conversations[k : k + chunk]:
            try:
                rendered.append(assistant_spans(tokenizer, messages))
            except TemplateError as e:
                rendered.append(e)
        texts = [r[0] for r in rendered if not isinstance(r, TemplateError)]
        # The Rust tokenizer directly: transformers' per-row conversion costs as much as tokenising.
        batch = iter(tokenizer.backend_tokenizer.encode_batch(texts, add_special_tokens=False))
        for r in rendered:
            if isinstance(r, TemplateError):
                results.append(r)
                continue
            enc = next(batch)
            results.append(_mask(enc.ids, enc.offsets, r[1], stop_ids, tokenizer.eos_token_id))
    return results


def _mask(ids: list[int], offsets, spans: list[tuple[int, int]], stop_ids: set[int], eos: int) -> Encoded:
    labels = [IGNORE] * len(ids)
    last_labelled = -1
    for start, end in spans:
        for j, (s, e) in enumerate(offsets):
            # Overlap, not containment: byte-level BPE glues a prompt's trailing space onto the
            # reply's first word ("assistant: yes" → "Ġyes"), and that token must still be learned.
            if e > start and s < end and e > s:
                labels[j] = ids[j]
                last_labelled = j
    if stop_ids and last_labelled >= 0 and ids[last_labelled] not in stop_ids:
        ids = ids[: last_labelled + 1] + [eos] + ids[last_labelled + 1 :]
        labels = labels[: last_labelled + 1] + [eos] + labels[last_labelled + 1 :]
    return Encoded(list(ids), labels)


@dataclass
class Labelled:
    """A text/label row for an encoder classifier: token ids and the label's index."""

    input_ids: list[int]
    label: int

    @property
    def trainable(self) -> int:
        return 1  # one label to learn per row, whatever its length


def encode_labelled(tokenizer, examples: list, labels: list[str], max_length: int,
                    too_long: list) -> list[Labelled]:
    """Token ids and label index per row; rows over `max_length` go to `too_long` as Problems, never cut."""
    from tailored.data.readers import Problem

    out = []
    ids = tokenizer([ex.text for ex in examples], add_special_tokens=True)["input_ids"] if examples else []
    for ex, row in zip(examples, ids):
        if len(row) > max_length:
            too_long.append(Problem(ex.source, ex.line, "text", f"{len(row)} tokens, over the encoder's "
                                    f"{max_length}", "shorten the text or split it into several rows"))
            continue
        out.append(Labelled(row, labels.index(ex.label)))
    return out


def _padded(rows: list, pad_id: int):
    import torch

    width = max(len(r.input_ids) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r.input_ids)] = torch.tensor(r.input_ids)
        mask[i, : len(r.input_ids)] = 1
    return ids, mask


def collate(rows: list[Encoded], pad_id: int) -> dict:
    """Right-padded tensors; padding is masked out of attention and loss."""
    import torch

    ids, mask = _padded(rows, pad_id)
    labels = torch.full_like(ids, IGNORE)
    for i, r in enumerate(rows):
        labels[i, : len(r.labels)] = torch.tensor(r.labels)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def collate_pairs(rows: list[Pair], pad_id: int) -> dict:
    """The chosen sides, then the rejected sides, as one right-padded batch (row i pairs with row n + i)."""
    return collate([r.chosen for r in rows] + [r.rejected for r in rows], pad_id)


def collate_labelled(rows: list[Labelled], pad_id: int) -> dict:
    """Right-padded ids and attention mask, and one label index per row."""
    import torch

    ids, mask = _padded(rows, pad_id)
    return {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor([r.label for r in rows])}
