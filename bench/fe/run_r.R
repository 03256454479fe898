#!/usr/bin/env Rscript
# plm two-way within on a generated panel: estimation time only (data loaded
# and indexed first), and peak memory.
#   Rscript bench/fe/run_r.R bench/data/panel_1000000.csv
suppressPackageStartupMessages(library(plm))
args <- commandArgs(trailingOnly = TRUE)
path <- if (length(args) > 0) args[1] else "bench/data/panel_100000.csv"
d <- read.csv(path)
pd <- pdata.frame(d, index = c("id", "time"))
invisible(gc(reset = TRUE))
t0 <- proc.time()
m <- plm(y ~ x1 + x2, data = pd, model = "within", effect = "twoways")
t1 <- proc.time() - t0
el <- t1[["elapsed"]]
cpu <- t1[["user.self"]] + t1[["sys.self"]]
g <- gc()
peak_mb <- sum(g[, ncol(g)])  # "max used" (Mb) since the reset, Ncells + Vcells
rss <- tryCatch(as.numeric(system(sprintf("ps -o rss= -p %d", Sys.getpid()), intern = TRUE)) / 1024,
                error = function(e) NA)
cat(sprintf("plm twoways rows=%d seconds=%.3f cpu_seconds=%.3f peak_R_heap_MB=%.0f rss_MB=%.0f b=%s\n",
            nrow(d), el, cpu, peak_mb, rss, paste(sprintf("%.6f", coef(m)), collapse = ",")))
