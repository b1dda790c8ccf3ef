"""The byte-mutation strategy every adapter's property tests share: valid seeds, damaged a few ways at once."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import strategies as st


@st.composite
def mutated(draw: st.DrawFn, seeds: Sequence[bytes], inserts: Sequence[bytes], *, max_ops: int = 8,
            max_delete: int = 20, swap_text: bool = False) -> bytes:
    """A seed with 1..max_ops byte flips, deletions, insertions of format-specific fragments, a truncation and,
    for XML, element text replaced by arbitrary text (`swap_text`)."""
    ops = ["flip", "delete", "insert", "truncate"] + (["swap_text"] if swap_text else [])
    data = bytearray(draw(st.sampled_from(list(seeds))))
    for _ in range(draw(st.integers(1, max_ops))):
        op = draw(st.sampled_from(ops))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[pos] = draw(st.integers(0, 255))
        elif op == "delete" and data:
            del data[pos:pos + draw(st.integers(1, max_delete))]
        elif op == "insert":
            data[pos:pos] = draw(st.sampled_from(list(inserts)))
        elif op == "swap_text":
            start = data.find(b">", pos)
            end = data.find(b"<", start + 1) if start >= 0 else -1
            if 0 <= start < end:
                data[start + 1:end] = draw(st.text(max_size=30)).encode("utf-8", "replace").replace(
                    b"<", b"").replace(b"&", b"")
        else:
            del data[pos:]
    return bytes(data)
