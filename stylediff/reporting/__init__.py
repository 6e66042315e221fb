"""The report of the workflow's runs: its tables (:mod:`.tables`) and figures (:mod:`.figures`), the
statistics the results page states (:mod:`.statistics`), the split-half guidance-methods comparison
(:mod:`.comparison`, written by :mod:`.methods_findings`) and how numbers are written (:mod:`.markdown`)."""
