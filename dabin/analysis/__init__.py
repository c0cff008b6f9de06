"""Looking inside trained models: where BIN keeps styles (BN) and where it removes them (IN)."""

from dabin.analysis.gates import (
    GATE_COLUMNS,
    gate_summary,
    gate_table,
    plot_gate_histogram,
    read_gate_csv,
    write_gate_csv,
)

__all__ = ["GATE_COLUMNS", "gate_summary", "gate_table", "plot_gate_histogram", "read_gate_csv", "write_gate_csv"]
