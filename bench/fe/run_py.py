#!/usr/bin/python3
"""pandas two-way demeaning + statsmodels OLS on a generated panel.

Estimation time only (CSV loaded first), and peak RSS.  The two-way within
transform is exact only for a balanced panel (x - xbar_i - xbar_t + xbar), which
is what gen_panel writes.
    /usr/bin/python3 bench/fe/run_py.py bench/data/panel_1000000.csv
"""
import resource
import sys
import time

import pandas as pd
import statsmodels.api as sm

path = sys.argv[1] if len(sys.argv) > 1 else "bench/data/panel_100000.csv"
d = pd.read_csv(path)
cols = ["y", "x1", "x2"]
t0, c0 = time.perf_counter(), time.process_time()
gi = d.groupby("id")[cols].transform("mean")
gt = d.groupby("time")[cols].transform("mean")
w = d[cols] - gi - gt + d[cols].mean()
fit = sm.OLS(w["y"].to_numpy(), w[["x1", "x2"]].to_numpy()).fit()
el, cpu = time.perf_counter() - t0, time.process_time() - c0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
print("pandas+statsmodels twoways rows=%d seconds=%.3f cpu_seconds=%.3f peak_rss_MB=%.0f b=%s"
      % (len(d), el, cpu, peak, ",".join("%.6f" % b for b in fit.params)))
