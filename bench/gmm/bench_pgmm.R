# bench/gmm: the same two models with plm::pgmm (see README.md).
#   Rscript bench/gmm/bench_pgmm.R <dir with synthetic.csv>
suppressMessages(library(plm))
args <- commandArgs(trailingOnly = TRUE)
best <- function(reps, f) { t <- sapply(seq_len(reps), function(i) system.time(f())[["elapsed"]]); min(t) }
d <- read.csv("tests/reference/data/EmplUK.csv")
pd <- pdata.frame(d, index = c("firm", "year"))
t1 <- best(5, function() summary(pgmm(log_emp ~ lag(log_emp, 1) + lag(log_wage, 0:1) + lag(log_capital, 0:1) |
  lag(log_emp, 2:99) + lag(log_wage, 2:99) + lag(log_capital, 2:99), data = pd, effect = "twoways",
  model = "twosteps", transformation = "ld"), robust = TRUE))
s <- read.csv(file.path(args[1], "synthetic.csv"))
ps <- pdata.frame(s, index = c("id", "year"))
t2 <- best(1, function() summary(pgmm(y ~ lag(y, 1) + x | lag(y, 2:99) + lag(x, 1:99), data = ps,
  effect = "twoways", model = "twosteps", transformation = "ld", collapse = TRUE), robust = TRUE))
cat(sprintf("PGMM_MS %.3f %.3f\n", t1 * 1000, t2 * 1000))
