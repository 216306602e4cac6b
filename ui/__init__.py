"""The dawemo desktop app (PyQt6); depends on dawemo, never the reverse."""
