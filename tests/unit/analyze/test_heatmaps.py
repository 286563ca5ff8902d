"""Heatmaps carry the subword tokens on their axes, per role, for training-time and analysis figures."""

from __future__ import annotations

from helpers.analyze_toys import toy_batch, toy_model

from nmt.train.heatmaps import attention_maps, heatmap_figure, token_labels


class Pieces:
    """A SentencePiece stand-in: piece of id i is "<side>i"."""

    def __init__(self, side: str) -> None:
        self.side = side

    def id_to_piece(self, i: int) -> str:
        return f"{self.side}{i}"


class FakeVocab:
    src_sp, tgt_sp = Pieces("s"), Pieces("t")


def test_axes_are_labelled_with_the_tokens_of_each_role():
    batch = toy_batch()
    maps = attention_maps(toy_model(layers=1), batch, 2)
    src1 = [f"s{int(i)}" for i in batch.src[1][~batch.src_padding_mask[1]]]
    tgt1 = [f"t{int(i)}" for i in batch.tgt_in[1][~batch.tgt_padding_mask[1]]]
    expected = {"encoder": (src1, src1), "decoder": (tgt1, tgt1), "cross": (tgt1, src1)}
    for name, per_sentence in maps.items():
        role = name.split("/")[0]
        rows, cols = token_labels(batch, 1, role, FakeVocab())
        assert (rows, cols) == expected[role]
        assert tuple(per_sentence[1].shape) == (len(rows), len(cols))  # real rows and columns only
        fig = heatmap_figure({"E1": per_sentence[1], "all": per_sentence[1]}, name, rows, cols)
        for ax in fig.axes[:2]:
            assert [t.get_text() for t in ax.get_xticklabels()] == cols
            assert [t.get_text() for t in ax.get_yticklabels()] == rows
