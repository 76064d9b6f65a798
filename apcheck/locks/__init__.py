"""Lock-order graphs: static (every path) and dynamic (what the explorer reached)."""
