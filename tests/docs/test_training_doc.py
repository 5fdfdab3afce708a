"""docs/training.md's switch reference is the one the code generates: no switch missing, none removed still listed."""

from pathlib import Path

from codectrace.arguments import switch_reference

DOC = Path(__file__).resolve().parents[2] / "docs" / "training.md"


def test_the_switch_table_in_the_training_doc_is_current():
    assert switch_reference() in DOC.read_text(), "regenerate it: python -c 'from codectrace.arguments import " \
                                                  "switch_reference; print(switch_reference())'"
