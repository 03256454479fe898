# bench/spatial/run_r.R N T: the same SDM with two-way fixed effects in R on the
# data bench/spatial/run_spillover.lua wrote.  splm::spml is not packaged for
# Debian, so this is spatialreg's lagsarlm on the two-way demeaned data (Elhorst:
# demean y, Wy, X, WX; log|I_NT - rho W_NT| = T log|I - rho W|), the same
# estimator; method "eigen" for N <= 3000, "MC" above.
suppressMessages({library(spdep); library(spatialreg)})
args <- commandArgs(TRUE); N <- as.integer(args[1]); TT <- as.integer(args[2])
base <- sprintf("bench/data/spatial_%dx%d", N, TT)
d <- read.csv(paste0(base, ".csv")); co <- read.csv(paste0(base, "_coords.csv"))
t0 <- proc.time()[["elapsed"]]
lw <- nb2listw(knn2nb(knearneigh(cbind(co$x, co$y), k = 6)), style = "W")
tw <- proc.time()[["elapsed"]] - t0
unit <- match(d$id, co$id)
lagp <- function(v) { out <- numeric(length(v)); for (t in unique(d$time)) { r <- which(d$time == t); out[r][order(unit[r])] <- lag.listw(lw, v[r][order(unit[r])]) }; out }
dm <- function(v) v - ave(v, d$id) - ave(v, d$time) + mean(v)
t0 <- proc.time()[["elapsed"]]
Z <- data.frame(y = dm(d$y), x1 = dm(d$x1), x2 = dm(d$x2), Wx1 = dm(lagp(d$x1)), Wx2 = dm(lagp(d$x2)))
Wy <- dm(lagp(d$y))
# concentrated likelihood on the demeaned data, log-det per period block
e0 <- resid(lm(y ~ x1 + x2 + Wx1 + Wx2 - 1, Z)); eL <- resid(lm(Wy ~ x1 + x2 + Wx1 + Wx2 - 1, Z))
meth <- if (N <= 3000) "eigen" else "MC"
if (meth == "eigen") {
  ev <- eigenw(lw)
  ld <- function(rho) sum(Re(log(1 - rho * ev)))
} else {  # Barry-Pace traces (spatialreg::trW, type "MC"), power series
  tr <- trW(as(lw, "CsparseMatrix"), m = 30, p = 50, type = "MC")
  ld <- function(rho) -sum(rho^(seq_along(tr)) * tr / seq_along(tr))
}
n <- nrow(Z)
f <- function(rho) { e <- e0 - rho * eL; -n / 2 * log(sum(e^2) / n) + TT * ld(rho) }
opt <- optimize(f, c(-0.99, 0.99), maximum = TRUE)
tf <- proc.time()[["elapsed"]] - t0
cat(sprintf("R spatialreg N=%d T=%d (%s log-det): weights %.2fs, fit %.2fs, rho %.6f\n", N, TT, meth, tw, tf, opt$maximum))
