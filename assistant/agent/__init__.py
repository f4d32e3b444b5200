"""Tool-calling step: patient booking tool and read-only staff tools."""
