"""One-off recipes that make and measure the bundled demo models (not part of the public pipeline API).

``python -m pipelines.recipes.demo`` (`make demo`), ``python -m pipelines.recipes.train_demo`` (`make train-demo`),
``python -m pipelines.recipes.report_demo`` (the README's numbers) and ``python -m pipelines.recipes.distill_refine``
(the refinement distillation stage of the recipe).
"""
