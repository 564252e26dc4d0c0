"""Paint random strokes with the differentiable renderer and write docs/render_demo.gif (+ .svg)."""

from paintrnn.render import demo_main

if __name__ == "__main__":
    demo_main()
