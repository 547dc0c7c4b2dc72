"""See inside: the computation graph (`draw_graph`, `save_graph`) and pictures of what a
network learned (`plot_filters`, `plot_feature_maps`, in matplotlib).

    dot = draw_graph(loss, expand={"conv2d"})     # a graphviz.Digraph
    fig = plot_filters(net.W1)                    # a matplotlib Figure, a panel per filter
    python -m tinygrad_cnn.viz --out graph.svg    # SimpleConvNet's training graph
"""
from .graph import Graph, dot_available, draw_graph, save_graph, write_graph
from .cli import main, simpleconvnet_graph
from .plots import plot_feature_maps, plot_filters, save_figure

__all__ = ["Graph", "draw_graph", "save_graph", "write_graph", "dot_available", "simpleconvnet_graph", "main",
           "plot_filters", "plot_feature_maps", "save_figure"]
