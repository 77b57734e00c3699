// The AVL tree of VMAs (see vma.h).
#include "hvmm/guest/mm/vma.h"

namespace hvmm::guest::mm {

// Recompute a node's height from its children.
void VmaTree::update(Vma* node) {
  const int l = height(node->left);
  const int r = height(node->right);
  node->height = 1 + (l > r ? l : r);
}

// Point `parent`'s link (or the root) that held `old_child` at `new_child`.
void VmaTree::replace_child(Vma* parent, Vma* old_child, Vma* new_child) {
  if (parent == nullptr) {
    root_ = new_child;
  } else if (parent->left == old_child) {
    parent->left = new_child;
  } else {
    parent->right = new_child;
  }
}

// Lift node->right above node.
void VmaTree::rotate_left(Vma* node) {
  Vma* pivot = node->right;
  node->right = pivot->left;
  if (pivot->left != nullptr) {
    pivot->left->parent = node;
  }
  pivot->parent = node->parent;
  replace_child(node->parent, node, pivot);
  pivot->left = node;
  node->parent = pivot;
  update(node);
  update(pivot);
}

// Lift node->left above node.
void VmaTree::rotate_right(Vma* node) {
  Vma* pivot = node->left;
  node->left = pivot->right;
  if (pivot->right != nullptr) {
    pivot->right->parent = node;
  }
  pivot->parent = node->parent;
  replace_child(node->parent, node, pivot);
  pivot->right = node;
  node->parent = pivot;
  update(node);
  update(pivot);
}

// Walk to the root fixing heights and rotating where the balance leaves [-1, 1].
void VmaTree::rebalance_from(Vma* node) {
  while (node != nullptr) {
    update(node);
    const int balance = height(node->left) - height(node->right);
    if (balance > 1) {
      if (height(node->left->left) < height(node->left->right)) {
        rotate_left(node->left);
      }
      rotate_right(node);
      node = node->parent;
    } else if (balance < -1) {
      if (height(node->right->right) < height(node->right->left)) {
        rotate_right(node->right);
      }
      rotate_left(node);
      node = node->parent;
    }
    node = node->parent;
  }
}

// Refuse overlaps, then insert as a BST leaf and rebalance upwards.
bool VmaTree::insert(Vma* vma) {
  if (vma->start >= vma->end) {
    return false;
  }
  const Vma* next = find_next(vma->start);
  if (next != nullptr && next->start < vma->end) {
    return false;
  }
  vma->left = vma->right = nullptr;
  vma->height = 1;
  Vma* parent = nullptr;
  Vma** link = &root_;
  while (*link != nullptr) {
    parent = *link;
    link = vma->start < parent->start ? &parent->left : &parent->right;
  }
  vma->parent = parent;
  *link = vma;
  ++count_;
  rebalance_from(parent);
  return true;
}

// Unlink (replacing a two-child node by its successor) and rebalance from the lowest change.
void VmaTree::erase(Vma* vma) {
  Vma* start;
  if (vma->left == nullptr || vma->right == nullptr) {
    Vma* child = vma->left != nullptr ? vma->left : vma->right;
    if (child != nullptr) {
      child->parent = vma->parent;
    }
    replace_child(vma->parent, vma, child);
    start = vma->parent;
  } else {
    Vma* successor = vma->right;
    while (successor->left != nullptr) {
      successor = successor->left;
    }
    if (successor->parent != vma) {
      Vma* sp = successor->parent;
      sp->left = successor->right;
      if (successor->right != nullptr) {
        successor->right->parent = sp;
      }
      successor->right = vma->right;
      vma->right->parent = successor;
      start = sp;
    } else {
      start = successor;
    }
    successor->left = vma->left;
    vma->left->parent = successor;
    successor->parent = vma->parent;
    replace_child(vma->parent, vma, successor);
    successor->height = vma->height;
  }
  vma->left = vma->right = vma->parent = nullptr;
  --count_;
  rebalance_from(start);
}

// Descend by start/end.
Vma* VmaTree::find(VirtAddr address) const {
  Vma* node = root_;
  while (node != nullptr) {
    if (address < node->start) {
      node = node->left;
    } else if (address >= node->end) {
      node = node->right;
    } else {
      return node;
    }
  }
  return nullptr;
}

// Lowest node with end > address (ends are ordered like starts: areas do not overlap).
Vma* VmaTree::find_next(VirtAddr address) const {
  Vma* best = nullptr;
  for (Vma* node = root_; node != nullptr;) {
    if (node->end > address) {
      best = node;
      node = node->left;
    } else {
      node = node->right;
    }
  }
  return best;
}

// Highest node with end <= address.
Vma* VmaTree::find_prev(VirtAddr address) const {
  Vma* best = nullptr;
  for (Vma* node = root_; node != nullptr;) {
    if (node->end <= address) {
      best = node;
      node = node->right;
    } else {
      node = node->left;
    }
  }
  return best;
}

// Leftmost and rightmost nodes.
Vma* VmaTree::first() const {
  Vma* node = root_;
  while (node != nullptr && node->left != nullptr) {
    node = node->left;
  }
  return node;
}
Vma* VmaTree::last() const {
  Vma* node = root_;
  while (node != nullptr && node->right != nullptr) {
    node = node->right;
  }
  return node;
}

// In-order successor through parent links.
Vma* VmaTree::next(const Vma* vma) {
  if (vma->right != nullptr) {
    Vma* node = vma->right;
    while (node->left != nullptr) {
      node = node->left;
    }
    return node;
  }
  const Vma* node = vma;
  Vma* parent = vma->parent;
  while (parent != nullptr && parent->right == node) {
    node = parent;
    parent = parent->parent;
  }
  return parent;
}

// In-order predecessor through parent links.
Vma* VmaTree::prev(const Vma* vma) {
  if (vma->left != nullptr) {
    Vma* node = vma->left;
    while (node->right != nullptr) {
      node = node->right;
    }
    return node;
  }
  const Vma* node = vma;
  Vma* parent = vma->parent;
  while (parent != nullptr && parent->left == node) {
    node = parent;
    parent = parent->parent;
  }
  return parent;
}

// Check links, order bounds, heights and balance of a subtree.
bool VmaTree::validate_node(const Vma* node, const Vma* parent, VirtAddr lo, VirtAddr hi,
                            int* height_out) {
  if (node == nullptr) {
    *height_out = 0;
    return true;
  }
  if (node->parent != parent || node->start >= node->end || node->start < lo || node->end > hi) {
    return false;
  }
  int l = 0;
  int r = 0;
  if (!validate_node(node->left, node, lo, node->start, &l) ||
      !validate_node(node->right, node, node->end, hi, &r)) {
    return false;
  }
  const int h = 1 + (l > r ? l : r);
  if (node->height != h || l - r > 1 || r - l > 1) {
    return false;
  }
  *height_out = h;
  return true;
}

// Check the whole tree and its count.
bool VmaTree::validate() const {
  int h = 0;
  if (!validate_node(root_, nullptr, VirtAddr(0), VirtAddr(~uint64_t{0}), &h)) {
    return false;
  }
  uint64_t n = 0;
  for (const Vma* v = first(); v != nullptr; v = next(v)) {
    ++n;
  }
  return n == count_;
}

}  // namespace hvmm::guest::mm
