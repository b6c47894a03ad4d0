"""Research instruments, kept apart from the product as detectron2 keeps its ``projects/``: the head
study (``model.type: study``, :mod:`ocrloc.research.study`, run by ``ocrloc experiment`` through
:mod:`ocrloc.research.head_study`; ``docs/head_study.md``) and the rule oracle
(:mod:`ocrloc.research.oracle`, the ablation labelled "oracle: rule told"). Their configs are in
``configs/research/``. The study is a family like the others (:mod:`ocrloc.families`), so it
trains, validates, predicts and exports through the same tools.
"""
