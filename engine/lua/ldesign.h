/*
** ldesign.h: the spillover.design userdata, for other bindings (estimators).
**
** sp.design(d, formula [, opts]) builds the design, allocates y, X, endog and
** inst as spillover.matrix userdata kept in the design's user values (1..4),
** fills them and detaches the design from the frame.  Estimator bindings get
** the C view here:
**
**   sp_design *des = sp_lua_check_design(L, 1);
**   gsl_matrix *y, *X, *endog, *inst;
**   sp_lua_design_matrices(L, 1, &y, &X, &endog, &inst);
**
** The matrices (NULL when absent: endog and inst without an IV part) stay
** valid while the design userdata is alive; they are the same objects Lua
** sees as des.y, des.X, ...  FE codes and extra variables are in des->fe and
** des->extra (sp_design_factor_find), over the used rows: des->rows, or every
** row of the frame when des->rows is NULL.
*/
#ifndef SPILLOVER_LDESIGN_H
#define SPILLOVER_LDESIGN_H

#include <gsl/gsl_matrix.h>
#include <lua.h>

#include "spillover/design.h"

#define SP_DESIGN_T "spillover.design"
#define SP_FORMULA_T "spillover.formula"

/* The design at idx; raises if it is not a design or was closed. */
sp_design *sp_lua_check_design(lua_State *L, int idx);

/* The design's matrices (any out pointer may be NULL).  Pushes nothing. */
void sp_lua_design_matrices(lua_State *L, int idx, gsl_matrix **y, gsl_matrix **X,
                            gsl_matrix **endog, gsl_matrix **inst);

#endif
