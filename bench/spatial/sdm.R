# bench/spatial/sdm.R N [reps]: spatialreg's spatial Durbin model on the data
# bench/spatial/sdm.lua wrote: W = the 6 nearest neighbours made symmetric,
# row-standardised (spdep), lagsarlm(Durbin = TRUE, method = "eigen") with
# its default asymptotic covariance, reps times in this process.  Prints the
# CPU times and the estimates as "coef <name> <value> <se>" in spillover's
# names.
suppressMessages({library(spdep); library(spatialreg)})
args <- commandArgs(TRUE); N <- as.integer(args[1]); reps <- if (length(args) > 1) as.integer(args[2]) else 2
d <- read.csv(sprintf("bench/data/sdm_%d.csv", N))
cpu <- function(e) { t <- proc.time(); force(e); u <- proc.time() - t; u[["user.self"]] + u[["sys.self"]] }
tw <- cpu(lw <- nb2listw(knn2nb(knearneigh(cbind(d$px, d$py), k = 6), sym = TRUE), style = "W"))
times <- numeric(reps)
for (r in seq_len(reps))
  times[r] <- cpu(fit <- lagsarlm(y ~ x1 + x2, data = d, listw = lw, Durbin = TRUE, method = "eigen"))
cat(sprintf("R spatialreg sdm N=%d: weights %.3f fits %s\n", N, tw, paste(sprintf("%.3f", times), collapse = " ")))
b <- c(rho = unname(fit$rho), coef(fit)[-1]); se <- c(fit$rho.se, fit$rest.se)
names(b) <- sub("^lag\\.", "W.", names(b))
for (i in seq_along(b)) cat(sprintf("coef %s %.15g %.15g\n", names(b)[i], b[i], se[i]))
