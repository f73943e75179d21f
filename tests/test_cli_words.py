"""Counted nouns in CLI messages ("1 epoch", "3 epochs")."""

from trainctl.cli.common import counted


def test_counted_is_singular_only_for_one():
    assert [counted(n, "epoch") for n in (0, 1, 2, 10)] == \
        ["0 epochs", "1 epoch", "2 epochs", "10 epochs"]
