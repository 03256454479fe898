/*
** panel.c: building the panel index and gap-aware shifts.
*/
#include <stdlib.h>

#include "spillover/mem.h"
#include "spillover/panel.h"

void sp_panel_free(sp_panel *p) {
  if (p == NULL) return;
  free(p->entity_name);
  free(p->time_name);
  sp_mem_free(p->entity);
  sp_mem_free(p->period);
  sp_mem_free(p->step);
  sp_mem_free(p->order);
  free(p->start);
  free(p);
}
