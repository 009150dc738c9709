/* heap.c: an intrusive binary min-heap of pointer-linked nodes (timers live
 * here). Nodes sit inside their owners, so insert and remove are O(log n) and
 * allocate nothing. */
#include "core.h"

/* Reach the slot of 1-based position k: walk from the root along the bits of
 * k below its top bit (0 = left, 1 = right). *parent gets the slot's parent. */
static soon_heap_node **heap_slot(soon_heap_node **root, unsigned k,
                                  soon_heap_node **parent) {
  unsigned path = 0, depth = 0;
  for (; k >= 2; k /= 2, depth++)
    path = (path << 1) | (k & 1);
  soon_heap_node **slot = root;
  *parent = NULL;
  for (; depth > 0; depth--, path >>= 1) {
    *parent = *slot;
    slot = (path & 1) ? &(*slot)->right : &(*slot)->left;
  }
  return slot;
}

/* Exchange child c with its parent p, relinking both neighbourhoods. */
static void heap_swap(soon_heap_node **root, soon_heap_node *p,
                      soon_heap_node *c) {
  soon_heap_node old = *p, *sibling;
  *p = *c;
  *c = old;
  p->parent = c;
  if (c->left == c) {
    c->left = p;
    sibling = c->right;
  } else {
    c->right = p;
    sibling = c->left;
  }
  if (sibling)
    sibling->parent = c;
  if (p->left)
    p->left->parent = p;
  if (p->right)
    p->right->parent = p;
  if (!c->parent)
    *root = c;
  else if (c->parent->left == p)
    c->parent->left = c;
  else
    c->parent->right = c;
}

static void heap_sift_up(soon_heap_node **root, soon_heap_node *n,
                         soon__heap_less less) {
  while (n->parent && less(n, n->parent))
    heap_swap(root, n->parent, n);
}

void soon__heap_insert(soon_heap_node **root, unsigned *count,
                       soon_heap_node *n, soon__heap_less less) {
  soon_heap_node *parent;
  soon_heap_node **slot = heap_slot(root, *count + 1, &parent);
  n->left = n->right = NULL;
  n->parent = parent;
  *slot = n;
  ++*count;
  heap_sift_up(root, n, less);
}

void soon__heap_remove(soon_heap_node **root, unsigned *count,
                       soon_heap_node *n, soon__heap_less less) {
  soon_heap_node *parent;
  soon_heap_node **slot = heap_slot(root, *count, &parent);
  soon_heap_node *last = *slot;
  *slot = NULL; /* detach the last node first, even if it is n */
  --*count;
  if (last == n)
    return;

  /* The last node takes n's place, then moves down or up to where it fits. */
  last->left = n->left;
  last->right = n->right;
  last->parent = n->parent;
  if (last->left)
    last->left->parent = last;
  if (last->right)
    last->right->parent = last;
  if (!n->parent)
    *root = last;
  else if (n->parent->left == n)
    n->parent->left = last;
  else
    n->parent->right = last;

  for (;;) {
    soon_heap_node *min = last;
    if (last->left && less(last->left, min))
      min = last->left;
    if (last->right && less(last->right, min))
      min = last->right;
    if (min == last)
      break;
    heap_swap(root, last, min);
  }
  heap_sift_up(root, last, less);
}
