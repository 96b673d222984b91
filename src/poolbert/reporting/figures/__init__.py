"""The report's figures, one module per figure; the only modules that import matplotlib.

Each module keeps its data apart from its drawing, as Optuna's `visualization.matplotlib` does:
`get_<figure>_info(...)` reads the loaded study into a small dataclass of plain data (raising
`FigureSkipped` with a note for the page when the data cannot support the figure), and
`plot_<figure>(info, path)` draws that and saves a PNG. `plot_loss_curve(history, path, title)`
takes the history itself, since `poolbert train` calls it.

    loss_curve      training loss per step, validation loss and metric per epoch
    history         optimisation history (report fig. 1)
    importances     hyperparameter importances (report fig. 2)
    slices          slice plots (report fig. 3)
    intermediate    the per-epoch values reported to the pruner
    parallel        parallel coordinates of the complete trials
    head_accuracy   seed re-trainings, their mean and interval, the best model, per head
    confusion       confusion matrices (single-label)
    reliability     reliability diagrams before and after temperature scaling
    _common         Agg backend, saving, axis words, FigureSkipped
"""
