"""Looking inside trained models: where BIN keeps styles (BN) and where it removes them (IN), and what Switchable Norm mixes."""

from dabin.analysis.gates import (
    GATE_COLUMNS,
    SWITCH_COLUMNS,
    TARGET_GATE_COLUMN,
    gate_summary,
    gate_table,
    plot_gate_histogram,
    read_gate_csv,
    read_switch_csv,
    switch_table,
    write_gate_csv,
    write_switch_csv,
)

__all__ = ["GATE_COLUMNS", "SWITCH_COLUMNS", "TARGET_GATE_COLUMN", "gate_summary", "gate_table",
           "plot_gate_histogram", "read_gate_csv", "read_switch_csv", "switch_table", "write_gate_csv",
           "write_switch_csv"]
