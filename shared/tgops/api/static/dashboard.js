// The dashboard's only script besides htmx: live refreshes pause while messages are selected.
document.addEventListener("htmx:confirm", function (event) {
  var element = event.detail.elt;
  if (element.hasAttribute("data-pause-when-selected") && document.querySelector("input.select:checked")) {
    event.preventDefault();
  }
});
document.addEventListener("change", function (event) {
  if (event.target.id === "select-all") {
    document.querySelectorAll("input.select").forEach(function (box) { box.checked = event.target.checked; });
  }
});
