/*
** linalg.h: dense linear algebra on caller-allocated GSL matrices.
**
** Matrices are gsl_matrix (row-major, any tda, so views work).  BLAS calls go
** to OpenBLAS through GSL's CBLAS declarations; LAPACK is reached through
** LAPACKE's *_work entry points in column-major layout on the row-major data
** (a row-major matrix is the column-major storage of its transpose), so
** LAPACKE never makes hidden transposed copies.
**
** Every function returns an sp_status and fills err on failure; outputs are
** caller-allocated and of the documented shape, or SP_EDIM names both shapes.
** Zero-size inputs are valid and give the mathematically natural result
** (an empty product, det of a 0x0 matrix = 1, ...).
**
** Allocation: crossprod, crossprod2, chol, chol_solve and inv_spd allocate
** nothing and are safe in hot loops.  solve, inv, qr_pivot, eigen_sym and
** logdet/det need O(n) or O(n^2) scratch; they allocate it once per call
** and free it on every path.
*/
#ifndef SPILLOVER_LINALG_H
#define SPILLOVER_LINALG_H

#include <stddef.h>

#include <gsl/gsl_matrix.h>
#include <gsl/gsl_vector.h>

#include "spillover/error.h"

/* Default numerical-rank tolerance of sp_linalg_qr_pivot (R's lm: 1e-7). */
#define SP_LINALG_QR_TOL 1e-7

/* XtX = X'X (p x p for X n x p), via dsyrk; both triangles are filled. */
int sp_linalg_crossprod(const gsl_matrix *X, gsl_matrix *XtX, sp_error *err);

/* XtY = X'Y (p x k for X n x p, Y n x k), via dgemm. */
int sp_linalg_crossprod2(const gsl_matrix *X, const gsl_matrix *Y, gsl_matrix *XtY,
                         sp_error *err);

/* Cholesky factorisation in place: A (n x n, symmetric positive definite;
   only its upper triangle is read) becomes the upper-triangular R with
   A = R'R, as R's chol() returns; the strict lower triangle is set to 0.
   SP_ESINGULAR when A is not positive definite, naming the first leading
   minor (1-based pivot) that is not; SP_EVALUE when A holds NaN or Inf. */
int sp_linalg_chol(gsl_matrix *A, sp_error *err);

/* Solve A X = B in place (B := A^{-1} B) given R from sp_linalg_chol
   (A = R'R); B is n x k.  Two triangular solves, no allocation. */
int sp_linalg_chol_solve(const gsl_matrix *R, gsl_matrix *B, sp_error *err);

/* In-place inverse of a symmetric positive definite A via Cholesky (dpotrf,
   dpotri); both triangles of the result are filled.  Errors as chol. */
int sp_linalg_inv_spd(gsl_matrix *A, sp_error *err);

/* Reciprocal condition number below which solve/inv call a matrix singular:
   R's solve() uses the same test, rcond (1-norm) < DBL_EPSILON. */
#define SP_LINALG_RCOND_MIN 2.220446049250313e-16

/* X = A^{-1} B for square A (n x n) and B (n x k) by LU with partial
   pivoting (dgetrf).  A and B are not changed; X may not alias A but may be
   B itself (the same gsl_matrix).  SP_ESINGULAR when a pivot is exactly zero
   or when the 1-norm reciprocal condition number estimated by dgecon is
   below SP_LINALG_RCOND_MIN (the message gives it).  If rcond is not NULL it
   receives that estimate.  Allocates a copy of A once. */
int sp_linalg_solve(const gsl_matrix *A, const gsl_matrix *B, gsl_matrix *X,
                    double *rcond, sp_error *err);

/* In-place inverse of a square matrix by LU (dgetrf, dgetri), with the same
   singularity test as sp_linalg_solve. */
int sp_linalg_inv(gsl_matrix *A, sp_error *err);

/* Column-pivoted Householder QR with R's rank rule (LINPACK dqrdc2, used by
   R's lm, lm.fit and qr(), with tol = SP_LINALG_QR_TOL there).
   X (n x p) is overwritten: its upper triangle (first min(n,p) rows) holds R,
   the part below the diagonal holds the Householder vectors, and tau
   (length >= min(n,p)) their leading elements (0 means no reflection).
   perm (length p) receives, for each column of the result, the 0-based index
   of the column of X it came from; *rank the numerical rank.

   The rule, exactly as dqrdc2 applies it: columns are processed left to
   right; before column l is reduced, while the 2-norm of its part in rows
   l..n-1 (what is left after the reflections of the columns before it) is
   below tol times the 2-norm of the original column (1 if that is 0), the
   column is moved to the far right and the columns after it shift left.
   Columns are otherwise kept in their original order, so the columns an
   estimator should drop are perm[rank..p-1], the later members of each
   collinear set, as in R.  rank = min(number of columns never moved, n).
   This is not "tol relative to the largest |R_jj|" (the LAPACK dgeqp3
   convention): each column is judged against its own norm, which is
   scale-invariant per column.  Only the first min(n, p) columns are tested.
   tol must be in [0, 1).  Allocates 2p doubles of scratch once. */
int sp_linalg_qr_pivot(gsl_matrix *X, gsl_vector *tau, size_t *perm, size_t *rank,
                       double tol, sp_error *err);

/* From the output of sp_linalg_qr_pivot on an n x p matrix, with
   k = min(n, p): R (k x p, upper triangular, zero below) and the thin Q
   (n x k, orthonormal columns) such that X[:, perm] = Q R.  qr_Q allocates
   k doubles of scratch once. */
int sp_linalg_qr_R(const gsl_matrix *QR, gsl_matrix *R, sp_error *err);
int sp_linalg_qr_Q(const gsl_matrix *QR, const gsl_vector *tau, gsl_matrix *Q, sp_error *err);

/* Eigen-decomposition of a symmetric matrix (dsyevd): values (length n) in
   ascending order, as LAPACK returns them (R's eigen() returns them in
   decreasing order); vectors (n x n, may be NULL) receives the orthonormal
   eigenvectors as its columns, column j belonging to values[j].  A must be
   symmetric to within 1e-12 relative to its largest element (SP_EVALUE
   otherwise, naming the first offending pair); A may be the same matrix as
   vectors.  SP_ECONV when LAPACK does not converge. */
int sp_linalg_eigen_sym(const gsl_matrix *A, gsl_vector *values, gsl_matrix *vectors,
                        sp_error *err);

/* log|det A| and the sign of det A (+1, -1, or 0 with logabsdet = -Inf when
   A is exactly singular) by LU, without overflow.  A is not changed. */
int sp_linalg_logdet(const gsl_matrix *A, double *logabsdet, int *sign, sp_error *err);

/* det A = sign * exp(logabsdet) (may overflow to +-Inf for huge values). */
int sp_linalg_det(const gsl_matrix *A, double *det, sp_error *err);

#endif
