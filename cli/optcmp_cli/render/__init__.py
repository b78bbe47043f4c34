"""How the CLI shows results: one place for each way of rendering.

Dependency rule: the modules below import what their medium needs; importing this package
imports none of them (a command's `--help` loads no plotting library).

- `escape`: text from archives made safe for the terminal, figures, Markdown and HTML;
- `numbers`: number formats shared by tables, figures and reports;
- `tables`: rich tables that fit the terminal;
- `html`: the report's Markdown as one self-contained HTML page;
- `palette`: the colour and marker of each optimizer and verdict (matplotlib is loaded
  only when a colour is first asked for);
- `style`: matplotlib's rc style of every figure and the finishing touches applied before
  a figure is written (plain log ticks, visible control characters, finite axis ranges);
- `layout`: figure grids, titles and legends around the panels that draw into one `Axes`;
- `save`: image formats and the atomic write of a figure (matplotlib loaded when saving).
"""

from __future__ import annotations

__all__: list[str] = []
