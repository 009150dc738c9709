// article.js: the seed article's XMLHttpRequest program (section 2.2.2) as it
// is printed there, ungarbled; the page that loads it sets url first.
var request = new XMLHttpRequest();
request.open('GET', url, true);

request.onload = function() {
    if (request.status >= 200 && request.status < 400) {
        console.log("Success! " + request.responseText.length + " characters received");
    } else {
        console.log("Server returned error " + request.status);
    }
};

request.onerror = function() {
    console.log("Connection Error");
};

console.log("before making the call");
request.send();
console.log("after making the call");
